/**
 * Where a decode step of the device plan's host executor goes (issue 19's decode ≥ 0.8 of the bandwidth bound):
 * one loaded rank (TinyLlama-1.1B shape by default, random weights, per format), a prompt prefilled, then decode
 * steps of one token timed with the executor's per-op hook (and the prompt's prefill step split the same way). Per token: each op class's ms and call count, the
 * linears' GB/s of weights read (by format: the decoder's and the LM head's), and what lies outside the ops (the
 * executor's own JS between calls: step setup, views, copies out). With `--threads 1` and `2` the difference of the
 * linears is the kernel pool's share. Prints `uptime` before and after: this machine is shared.
 *
 * usage: node --conditions=source --import tsx examples/src/bench/host-decode-profile.ts [--formats bf16,q8_0,q4_0]
 *          [--layers 22] [--vocab 32000] [--context 128] [--steps 12] [--threads 2] [--backend tensorflow|cpu]
 *          [--out bench-results/host-decode-profile.json] [--pages huge,4k] [--rounds 3] [--engine plain,traced] [--fuse on,off]
 *          [--interleave]
 * --interleave: load every format first, then alternate the rounds over all of them (default: one format after the
 * other, each disposed before the next loads). On a shared machine formats measured in turn land in different minutes.
 * --pages: where the weights (and the KV pool) live, one loaded rank each, rounds of --steps alternating between them:
 * huge (hostBuffer's 2 MiB pages, the default) or 4k (ordinary ArrayBuffers). The anonymous huge pages after each
 * load are reported (anonHugePagesMB, the process's, cumulative).
 * --fuse: the executor's fusions (HostPlanExecutorOptions.fuse) on and/or off, one executor each on the same weights.
 * --engine: the same format also through `LLM` (a worker-thread rank on the host plan, as bench:cpu's weft rows),
 * its rounds alternating with the bare executor's (host-decode-engine.ts): `plain` (tokens streamed, the gap between
 * two), `traced` (the same with the rank's trace, which splits each gap: rank step, executor step, rank waiting).
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { setHugePagesDefault } from '@weft/cpu-kernels';
import { initBackend, type BackendName } from '@weft/core';
import { buildAttentionMetadata, HostPlanExecutor, positionsOf, type DevicePlan, type PlanOp } from '@weft/layers';
import { engineRank } from './host-decode-engine.js';
import { loadPlanRank, planCheckpoint } from './plan-rank.js';
import { median } from './stats.js';

/** Bytes a decoder weight takes per element in each format. */
const BYTES_PER_WEIGHT: Record<string, number> = { bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32 };
/** The same for any weight the plan's linears read (the LM head stays bf16 or fp32). */
const BYTES_PER_ELEMENT: Record<string, number> = { ...BYTES_PER_WEIGHT, fp32: 4 };

/** MB of this process's anonymous memory in transparent huge pages (Linux; the packed weights' hostBuffer asks for them), null elsewhere. */
function anonHugePagesMB(): number | null {
  const f = '/proc/self/smaps_rollup';
  const m = existsSync(f) ? /^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync(f, 'utf8')) : null;
  return m ? Math.round(Number(m[1]) / 1024) : null;
}

function opClass(op: PlanOp): string {
  if (op.kind !== 'linear') return op.kind;
  return /lm_head|embed_tokens/.test(op.weight.name) ? 'linear lm_head' : 'linear decoder';
}

/** An executor of a loaded rank's plan (weights in `pages`), a prompt prefilled: rounds of N decode steps, then a row. */
function profiledRank(plan: DevicePlan, hugeMB: number | null, fmt: string, pages: string, o: { threads: number; C: number; N: number; V: number; fuse: boolean }) {
  const { threads, C, N, V, fuse } = o;
  const bytes = new Map<string, number>();
  for (const op of plan.ops) {
    if (op.kind !== 'linear') continue;
    const c = opClass(op);
    const per = BYTES_PER_ELEMENT[op.weight.packed?.format ?? 'fp32']!;
    bytes.set(c, (bytes.get(c) ?? 0) + op.x.width * op.out.width * per);
  }
  // Per op run (and per gap before it): the least time over the timed steps. On a shared machine a step's median
  // carries the other tenants; the sum of each op's best is what the step costs when nobody preempts it. Keyed by the
  // op the executor reports (a fused op is one).
  const index = new Map<PlanOp, number>();
  const opMin: number[] = [], gapMin: number[] = [];
  let afterMin = Infinity;
  const perStep: Map<string, { ms: number; calls: number }>[] = [];
  let current: Map<string, { ms: number; calls: number }> | null = null;
  // the executor's own time: before the first op (checks, step set-up), between ops, after the last (copies out)
  let stepStart = 0, lastEnd = 0, firstStart = 0;
  let gaps = { before: 0, between: 0, after: 0 };
  const gapSteps: (typeof gaps)[] = [];
  const ex = new HostPlanExecutor(plan, {
    threads,
    fuse,
    profile: (op, ms) => {
      const end = performance.now(), start = end - ms;
      const gap = firstStart ? start - lastEnd : start - stepStart;
      if (!firstStart) firstStart = start;
      else gaps.between += start - lastEnd;
      lastEnd = end;
      if (!current) return;
      let at = index.get(op);
      if (at === undefined) index.set(op, (at = index.size));
      opMin[at] = Math.min(opMin[at] ?? Infinity, ms);
      gapMin[at] = Math.min(gapMin[at] ?? Infinity, gap);
      const e = current.get(opClass(op)) ?? { ms: 0, calls: 0 };
      e.ms += ms;
      e.calls++;
      current.set(opClass(op), e);
    },
  });
  const blockSize = 16, perSeq = Math.ceil((C + N + 4) / blockSize);
  ex.initCaches(perSeq, blockSize);
  const table = Array.from({ length: perSeq }, (_, i) => i);
  const stepAt = async (ctx: number, q: number) => {
    const meta = buildAttentionMetadata([{ seqId: 0, queryLen: q, contextLen: ctx, blockTable: table }], blockSize);
    const tokenIds = Int32Array.from({ length: q }, (_, i) => (i * 7 + 3) % V), positions = positionsOf(meta);
    firstStart = 0;
    gaps = { before: 0, between: 0, after: 0 };
    const t0 = (stepStart = performance.now());
    await ex.step({ tokenIds, positions, seqs: meta.seqs, blockSize, sampledRows: Int32Array.of(q - 1) });
    const t1 = performance.now();
    gaps.before = firstStart - stepStart;
    gaps.after = t1 - lastEnd;
    if (current) afterMin = Math.min(afterMin, gaps.after);
    return t1 - t0;
  };
  const walls: number[] = [];
  let prefillMs = 0;
  let prefill: Record<string, number> = {};
  return {
    /** N decode steps at context C (the cache's slots are rewritten each round); the first round prefills and warms up 2 steps. */
    async round(first: boolean) {
      if (first) {
        current = new Map();
        prefillMs = await stepAt(0, C);
        prefill = Object.fromEntries([...current].map(([c, e]) => [c, +e.ms.toFixed(2)]));
      }
      for (let i = 0; i < N + (first ? 2 : 0); i++) {
        const warm = first && i < 2;
        current = warm ? null : new Map();
        const ms = await stepAt(C + (first ? i : i + 2), 1);
        if (current) {
          gapSteps.push(gaps);
          perStep.push(current);
          walls.push(ms);
        }
      }
    },
    finish(): Record<string, unknown> {
      ex.dispose();
      const classes = [...new Set(perStep.flatMap((m) => [...m.keys()]))];
      const row: Record<string, unknown> = {
        format: fmt, pages, fuse, threads, tokS: +(1000 / median(walls)).toFixed(2), stepMs: +median(walls).toFixed(2), stepMinMs: +Math.min(...walls).toFixed(2),
        sumOfBestMs: +[...opMin, ...gapMin, afterMin].reduce((a, b) => a + b, 0).toFixed(2),
      };
      const split: Record<string, unknown> = {};
      for (const c of classes) {
        const ms = median(perStep.map((m) => m.get(c)?.ms ?? 0));
        const best = [...index].reduce((a, [op, i]) => a + (opClass(op) === c ? opMin[i]! : 0), 0);
        const calls = perStep[0]!.get(c)?.calls ?? 0;
        const b = bytes.get(c);
        split[c] = {
          ms: +ms.toFixed(3), bestMs: +best.toFixed(3), calls, usPerCallBest: +((1000 * best) / calls).toFixed(1),
          ...(b ? { GBs: +(b / ms / 1e6).toFixed(1), GBsBest: +(b / best / 1e6).toFixed(1), MB: +(b / 1e6).toFixed(1) } : {}),
        };
      }
      split['outside ops (executor JS)'] = {
        ms: +median(walls.map((w, i) => w - [...perStep[i]!.values()].reduce((a, e) => a + e.ms, 0))).toFixed(3),
        bestMs: +(gapMin.reduce((a, b) => a + b, 0) + afterMin).toFixed(3),
        before: +median(gapSteps.map((g) => g.before)).toFixed(3),
        between: +median(gapSteps.map((g) => g.between)).toFixed(3),
        after: +median(gapSteps.map((g) => g.after)).toFixed(3),
      };
      row.split = split;
      row.prefill = { tokens: C, ms: +prefillMs.toFixed(1), tokS: +((1000 * C) / prefillMs).toFixed(1), split: prefill };
      const total = [...bytes.values()].reduce((a, b) => a + b, 0);
      row.weightGB = +(total / 1e9).toFixed(3);
      row.effectiveGBs = +(total / median(walls) / 1e6).toFixed(1);
      row.anonHugePagesMB = hugeMB;
      return row;
    },
  };
}

type Variant = { round(first: boolean): Promise<void>; finish(): Record<string, unknown> | Promise<Record<string, unknown>> };

/** `rounds` rounds over `variants`, alternating (every other round reversed); each variant's row printed and kept. */
async function runRounds(variants: Variant[], rounds: number, results: Record<string, unknown>[]) {
  for (let r = 0; r < rounds; r++) for (const v of r % 2 ? [...variants].reverse() : variants) await v.round(r === 0);
  for (const v of variants) {
    const row = await v.finish();
    console.log(JSON.stringify(row, null, 1));
    results.push(row);
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      formats: { type: 'string', default: 'bf16,q8_0,q4_0' },
      layers: { type: 'string', default: '22' },
      vocab: { type: 'string', default: '32000' },
      context: { type: 'string', default: '128' },
      steps: { type: 'string', default: '12' },
      threads: { type: 'string', default: '2' },
      backend: { type: 'string', default: 'tensorflow' },
      out: { type: 'string', default: 'bench-results/host-decode-profile.json' },
      pages: { type: 'string', default: 'huge' },
      rounds: { type: 'string', default: '1' },
      engine: { type: 'string', default: '' },
      fuse: { type: 'string', default: 'on' },
      interleave: { type: 'boolean', default: false },
    },
  });
  const L = Number(values.layers), V = Number(values.vocab), C = Number(values.context), N = Number(values.steps), threads = Number(values.threads);
  const rounds = Number(values.rounds);
  const uptime = execSync('uptime').toString().trim();
  console.log(uptime);
  const dir = planCheckpoint(L, V);
  // the model's tfjs side (rotary tables, parameters) is built, never run; `--backend cpu`: as a deferred tensorflow
  // rank runs (bench:cpu's weft rows: libtensorflow not loaded)
  await initBackend({ prefer: values.backend as BackendName });
  const results: Record<string, unknown>[] = [];
  const pagesList = values.pages!.split(',');
  for (const p of pagesList) if (p !== 'huge' && p !== '4k') throw new Error(`--pages: '${p}' is not huge or 4k`);
  const fuseList = values.fuse!.split(',').map((f) => {
    if (f !== 'on' && f !== 'off') throw new Error(`--fuse: '${f}' is not on or off`);
    return f === 'on';
  });
  // --interleave: every format loaded first, then rounds alternating over all of them (formats run one after the
  // other land in different minutes of a shared machine: the last one measured its neighbours' load, not itself)
  const pending: Variant[] = [];
  const held: { dispose(): void }[] = [];
  for (const fmt of values.formats!.split(',')) {
    if (!(fmt in BYTES_PER_WEIGHT)) throw new Error(`--formats: unknown format '${fmt}' (${Object.keys(BYTES_PER_WEIGHT).join(', ')})`);
    // one loaded rank per page size, rounds alternating between them (this machine is shared: only A/B in one process counts)
    // and, per loaded rank, one executor per --fuse value (packed weights are shared between executors, not copied)
    const models: { dispose(): void }[] = [];
    const variants: Variant[] = pagesList.flatMap((pages) => {
      setHugePagesDefault(pages === 'huge');
      const model = loadPlanRank(dir, fmt);
      models.push(model);
      const hugeMB = anonHugePagesMB();
      const plan = model.recordPlan();
      return fuseList.map((fuse) => profiledRank(plan, hugeMB, fmt, pages, { threads, C, N, V, fuse }));
    });
    setHugePagesDefault(true);
    for (const e of values.engine ? values.engine.split(',') : []) {
      if (e !== 'plain' && e !== 'traced') throw new Error(`--engine: '${e}' is not plain or traced`);
      const eng = await engineRank(dir, fmt, { C, N, V, backend: 'tensorflow', trace: e === 'traced' }); // bench:cpu's weft rows (deferred libtensorflow)
      variants.push({ round: () => eng.round(), finish: () => eng.finish() });
    }
    if (values.interleave) {
      pending.push(...variants);
      held.push(...models);
      continue;
    }
    await runRounds(variants, rounds, results);
    for (const m of models) m.dispose();
  }
  await runRounds(pending, rounds, results);
  for (const m of held) m.dispose();
  const after = execSync('uptime').toString().trim();
  console.log(after);
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, JSON.stringify({ uptime, after, layers: L, vocab: V, context: C, steps: N, threads, results }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
