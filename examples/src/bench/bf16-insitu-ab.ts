/**
 * bf16 decode GEMVs in situ vs alone, one process, rounds alternating (helper bf16-insitu): a bf16 rank of the
 * TinyLlama shape loaded as the profile loads it, then per round
 *  exec:   the executor's decode step, its bf16 linears' time from the profile hook;
 *  bare:   the addon's gemmBf16 on the plan's own weight arrays, in plan order, m = 1;
 *  planop: planKernels().linear on the same arrays (the executor's kernel call, contiguous views);
 *  fresh:  gemmBf16 on copies of the weights in new hostBuffers (new memory, filled by one memcpy);
 *  q4:     a Q4_0 rank's executor step (its ms; its LM head, bf16 as the bf16 rank's, in 'q4_0 head');
 *  probe:  the native read-bandwidth probe (--probe path, 2 MiB pages), printed as the ms it would take for the bf16 bytes.
 * usage: node --conditions=source --import tsx examples/src/bench/bf16-insitu-ab.ts [--rounds 6] [--fmt bf16]
 */
import { execFileSync, execSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { cpuKernels, hostBuffer, planKernels, type HostMatrix } from '@weft/cpu-kernels';
import { initBackend } from '@weft/core';
import { buildAttentionMetadata, HostPlanExecutor, positionsOf, type PlanOp } from '@weft/layers';
import { loadPlanRank, planCheckpoint } from './plan-rank.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' }, threads: { type: 'string', default: '2' }, variants: { type: 'string', default: 'exec,bare,planop,fresh' }, probe: { type: 'string', default: '' } } });
const threads = Number(values.threads);
console.log(execSync('uptime').toString().trim());
await initBackend({ prefer: 'cpu' as never });
const dir = planCheckpoint(22, 32000);
const model = loadPlanRank(dir, 'bf16');
const plan = model.recordPlan();
const lin = plan.ops.filter((o): o is Extract<PlanOp, { kind: 'linear' }> => o.kind === 'linear' && o.weight.packed?.format === 'bf16');
const ws = lin.map((o) => ({ name: o.weight.name, n: o.out.width, k: o.x.width, data: (o.weight.packed as { data: Uint16Array }).data, acc: o.accumulate, strided: o.x.act.width !== o.x.width || o.out.act.width !== o.out.width }));
const bytes = ws.reduce((a, w) => a + w.n * w.k * 2, 0);
console.log(`${ws.length} bf16 linears, ${(bytes / 1e9).toFixed(3)} GB; accumulate ${ws.filter((w) => w.acc).length}, strided ${ws.filter((w) => w.strided).length}`);
const fresh = ws.map((w) => {
  const d = new Uint16Array(hostBuffer(w.data.byteLength));
  d.set(w.data);
  return { ...w, data: d };
});
const K = cpuKernels({ threads });
const P = planKernels({ threads });
const xs = new Map<number, Float32Array>();
const xOf = (k: number) => xs.get(k) ?? (xs.set(k, Float32Array.from({ length: k }, (_, i) => Math.sin(i * 0.37) * 2)), xs.get(k)!);
const out = new Float32Array(32000 + 11264);
function bare(list: typeof ws): number {
  const t0 = performance.now();
  for (const w of list) K.gemmBf16(xOf(w.k), 1, w.k, w.data, w.n, out.subarray(0, w.n));
  return performance.now() - t0;
}
function planop(list: typeof ws): number {
  const t0 = performance.now();
  for (const w of list) P.linear({ data: xOf(w.k), offset: 0, stride: w.k }, 1, { format: 'bf16', n: w.n, k: w.k, data: w.data } as HostMatrix, { data: out, offset: 0, stride: w.n }, w.acc, null);
  return performance.now() - t0;
}
const head = (op: PlanOp) => op.kind === 'linear' && /lm_head/.test(op.weight.name);
const bs = 16, C = 128, perSeq = Math.ceil((C + 200) / bs);
const table = Array.from({ length: perSeq }, (_, i) => i);
const extra: Record<string, number[]> = {};
/** An executor of `p`: each step returns its decoder linears' ms (the LM head's into extra[`${tag} head`]). */
function executor(p: typeof plan, tag: string) {
  let dec = 0, hd = 0;
  const e = new HostPlanExecutor(p, { threads, fuse: true, profile: (op, ms) => { if (op.kind === 'linear') { if (head(op)) hd += ms; else dec += ms; } } });
  e.initCaches(perSeq, bs);
  let ctx = C;
  return async () => {
    const meta = buildAttentionMetadata([{ seqId: 0, queryLen: 1, contextLen: ctx, blockTable: table }], bs);
    ctx = ctx >= C + 150 ? C : ctx + 1;
    dec = hd = 0;
    await e.step({ tokenIds: Int32Array.of(5), positions: positionsOf(meta), seqs: meta.seqs, blockSize: bs, sampledRows: Int32Array.of(0) });
    (extra[`${tag} head`] ??= []).push(hd);
    return dec + hd;
  };
}
const exec = executor(plan, 'bf16');
const q4plan = values.variants!.includes('q4') ? loadPlanRank(dir, 'q4_0').recordPlan() : null;
const q4 = q4plan ? executor(q4plan, "q4_0") : async () => 0; // its ms (the GB/s printed for it use bf16 bytes: read the ms)
// the native read-bandwidth probe (examples' native-bandwidth.ts binary, huge pages) as if it read the bf16 bytes
const probe = () => bytes / 1e6 / Number(execFileSync(values.probe!, [String(threads), '256', '5', 'huge'], { encoding: 'utf8' }).trim());
const variants: Record<string, () => Promise<number> | number> = { probe, exec, bare: () => bare(ws), planop: () => planop(ws), fresh: () => bare(fresh), q4 };
const names = values.variants!.split(',');
const res: Record<string, number[]> = {};
for (const v of names) await variants[v]!(); // warm
for (let r = 0; r < Number(values.rounds); r++)
  for (const v of r % 2 ? [...names].reverse() : names)
    for (let s = 0; s < 4; s++) (res[v] ??= []).push(await variants[v]!());
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
for (const [v, a] of Object.entries(extra)) console.log(`${v.padEnd(9)} ms ${med(a).toFixed(2)} (best ${Math.min(...a).toFixed(2)}) = ${(131.072e6 / med(a) / 1e6).toFixed(1)} GB/s (best ${(131.072e6 / Math.min(...a) / 1e6).toFixed(1)})`);
for (const v of names) console.log(`${v.padEnd(7)} ms ${med(res[v]!).toFixed(2)} (best ${Math.min(...res[v]!).toFixed(2)}) = ${(bytes / med(res[v]!) / 1e6).toFixed(1)} GB/s (best ${(bytes / Math.min(...res[v]!) / 1e6).toFixed(1)})`);
console.log(execSync('uptime').toString().trim());

