/**
 * npm run bench:kernels — the kernel candidate table for compressed CPU weights (docs/benchmarks/cpu-kernels.md):
 * a GEMV/GEMM of TinyLlama's gate_up shape (5632×2048) and of the LM head (32000×2048) at 1 and 16 rows,
 * 1 and 2 threads, in GB/s of weights read, for every candidate and format:
 *   - weft native (@weft/cpu-kernels' addon: avx512 / avx2 paths) and its portable JS path;
 *   - tfjs-node (TensorFlow's own fp32 matmul; Eigen and oneDNN): tfjs has no bf16 or int8 dtype;
 *   - onnxruntime-node 1.30 MatMulNBits (8 and 4 bits, block 32) on the same blocks, a8 (accuracy_level 4)
 *     and weight-only (accuracy_level 0); installed by `scripts/setup-kernel-bench.sh` outside the workspace;
 *   - wasm SIMD kernels of our own (wasm-kernels.ts), with relaxed SIMD where this Node has it.
 * Weights rotate through enough copies (≥ 320 MB in all) that every call reads from memory, not from the
 * 32 MB L3, as decode does. Each (candidate, threads) runs in its own child process; rounds alternate;
 * cells are medians over rounds of each round's median call. The wall: the native read bandwidth probe
 * (native-bandwidth.ts) at 1 and 2 threads, in the same run.
 *
 * usage: node examples/dist/bench/kernels.js [--rounds 2] [--only native,tfjs,ort,wasm,portable] [--shapes gate_up,lm_head] [--rows 1,16]
 *          [--out bench-results/kernels.json]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { type KernelCase, type KernelJob } from './kernel-candidates.js';
import { measureNativeBandwidth } from './native-bandwidth.js';
import { median } from './stats.js';

const FAMILIES: { family: KernelJob['family']; threads: number[]; group: string }[] = [
  { family: 'native', threads: [1, 2], group: 'native' },
  { family: 'ort', threads: [1, 2], group: 'ort' },
  { family: 'tfjs', threads: [1, 2], group: 'tfjs' },
  { family: 'tfjs-onednn', threads: [1, 2], group: 'tfjs' },
  { family: 'wasm', threads: [1], group: 'wasm' },
  { family: 'portable', threads: [1], group: 'portable' },
];


async function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '2' },
      only: { type: 'string' },
      out: { type: 'string', default: 'bench-results/kernels.json' },
      child: { type: 'string' },
      shapes: { type: 'string', default: 'gate_up,lm_head' },
      rows: { type: 'string', default: '1,16' },
    },
  });
  if (values.child) {
    const { runKernelJob } = await import('./kernel-candidates.js');
    await runKernelJob(JSON.parse(values.child) as KernelJob, (c) => console.log(`RESULT ${JSON.stringify(c)}`));
    return;
  }
  const rounds = Number(values.rounds);
  const only = values.only?.split(',');
  const fams = FAMILIES.filter((f) => !only || only.includes(f.group) || only.includes(f.family));
  const results: KernelCase[][] = [];
  const load: number[] = [];
  const notes = new Set<string>();
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...fams].reverse() : fams;
    for (const f of order)
      for (const threads of f.threads) {
        const job: KernelJob = { family: f.family, threads, rows: values.rows!.split(',').map(Number), shapes: values.shapes!.split(',') as KernelJob['shapes'] };
        load.push(loadavg()[0]!);
        process.stderr.write(`round ${round + 1}/${rounds}: ${f.family} ${threads} thread(s) (load ${loadavg()[0]!.toFixed(1)})\n`);
        const r = spawnSync(process.execPath, [...process.execArgv, ...(f.family === 'wasm' ? ['--experimental-wasm-relaxed-simd'] : []), process.argv[1]!, '--child', JSON.stringify(job)], {
          encoding: 'utf8',
          maxBuffer: 64 << 20,
          env: { ...process.env, TF_NUM_INTRAOP_THREADS: String(threads), TF_NUM_INTEROP_THREADS: '1', TF_CPP_MIN_LOG_LEVEL: '3', TF_ENABLE_ONEDNN_OPTS: f.family === 'tfjs-onednn' ? '1' : '0' },
        });
        const got = r.stdout.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice(7)) as KernelCase);
        if (r.status !== 0 || !got.length) {
          const why = `${f.family} ${threads}t: exit ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`;
          notes.add(why);
          process.stderr.write(`  ${why}\n`);
        }
        results.push(got);
        for (const c of got) if (c.note) notes.add(`${c.candidate}: ${c.note}`);
      }
  }
  const bw = measureNativeBandwidth([1, 2], 256, 5);
  const flat = results.flat();
  const key = (c: KernelCase) => `${c.candidate}|${c.format}|${c.shape}|${c.m}|${c.threads}`;
  const cells = new Map<string, KernelCase[]>();
  for (const c of flat) cells.set(key(c), [...(cells.get(key(c)) ?? []), c]);
  const merged = [...cells.values()].map((cs) => ({ ...cs[0]!, ms: median(cs.map((c) => c.ms)), gbPerS: median(cs.map((c) => c.gbPerS)), rounds: cs.length }));
  const rowsOf = [...new Set(merged.map((c) => `${c.candidate}|${c.format}`))];
  const cols: [string, number, number][] = [];
  for (const shape of ['gate_up', 'lm_head']) for (const m of [1, 16]) for (const t of [1, 2]) cols.push([shape, m, t]);
  const head = `| candidate | format | ${cols.map(([s, m, t]) => `${s} m=${m} t=${t}`).join(' | ')} |`;
  const lines = [head, `|${' --- |'.repeat(cols.length + 2)}`];
  for (const rk of rowsOf) {
    const [cand, fmt] = rk.split('|');
    const vals = cols.map(([s, m, t]) => {
      const c = merged.find((x) => x.candidate === cand && x.format === fmt && x.shape === s && x.m === m && x.threads === t);
      return c ? c.gbPerS.toFixed(1) : '—';
    });
    lines.push(`| ${cand} | ${fmt} | ${vals.join(' | ')} |`);
  }
  const bwLine = bw.gbPerS ? `memory read bandwidth (native probe, ${bw.how}): ${bw.gbPerS[1]?.toFixed(1)} GB/s at 1 thread, ${bw.gbPerS[2]?.toFixed(1)} GB/s at 2` : `memory bandwidth: ${bw.how}`;
  const loadLine = `load average (1 min) at each child's start: median ${median(load).toFixed(1)}, range ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}; rounds ${rounds}`;
  console.log(lines.join('\n'));
  console.log(bwLine);
  console.log(loadLine);
  for (const n of notes) console.log(`note: ${n}`);
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, JSON.stringify({ date: new Date().toISOString(), bandwidth: bw, load, rounds, cells: merged, raw: flat, notes: [...notes] }, null, 1));
}

await main();
