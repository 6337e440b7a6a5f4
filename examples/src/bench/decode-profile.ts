/**
 * Where weft's decode step goes on the tensorflow backend (default: TinyLlama-1.1B
 * shape, tp 2): every tfjs kernel each rank runs is counted and timed, with the
 * tensor reads (GPU-style downloads: here TF → JS copies, e.g. for the
 * all-reduce) and tensor creations, without touching weft's code. A preload
 * module (`--require`, which Node also runs in every worker thread) wraps the
 * tfjs engine's runKernel / readSync / read / makeTensor of each thread and
 * appends the events to a file; the driver marks the time windows of a prefill
 * (1 token) and of a prefill + N decode steps, and decode per step is their
 * difference ÷ N. Also measured in this process: the floor of one TF op
 * (a tiny add) and a [1×K]·[K×N] matMul against the read bandwidth.
 *
 * usage: node examples/dist/bench/decode-profile.js [--shape tinyllama|small] [--tp 2] [--pp 1] [--backend tensorflow] [--format f32|bf16|q8_0|q4_0]
 *          [--prompt 128] [--decode 32] [--out bench-results/decode-profile.json]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BackendName } from '@weft/core';
import { measureNativeBandwidth } from './native-bandwidth.js';
import { hasRandomLlama, paramCount, writeRandomLlama, type LlamaShape } from './random-checkpoint.js';
import { median as med } from './stats.js';

// The shapes of bench:cpu (cpu.ts runs its bench when imported, so they are repeated here).
const SHAPES: Record<string, LlamaShape> = {
  small: { name: 'small', hidden: 1024, layers: 8, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 32000 },
  tinyllama: { name: 'tinyllama', hidden: 2048, layers: 22, heads: 32, kvHeads: 4, intermediate: 5632, vocab: 32000 },
};

/** The preload module: CommonJS, so that `--require` runs it in the main thread and in every worker thread. */
const HOOK = String.raw`
const { appendFileSync } = require('node:fs');
const { threadId } = require('node:worker_threads');
const out = process.env.WEFT_PROFILE_DIR + '/thread-' + threadId + '.jsonl';
const t0 = performance.timeOrigin;
let buf = [];
let lastFlush = performance.now();
let depth = 0;
function flush() { if (buf.length) { appendFileSync(out, buf.join('\n') + '\n'); buf = []; } lastFlush = performance.now(); }
function rec(kind, name, start, dur, extra) {
  buf.push(JSON.stringify([kind, name, +(t0 + start).toFixed(3), +dur.toFixed(4), extra ?? null]));
  if (start - lastFlush > 300) flush();
}
const MATMUL = new Set(['BatchMatMul', '_FusedMatMul', 'MatMul']);
function patch(engine) {
  if (engine.__weftProfiled) return;
  engine.__weftProfiled = true;
  const runKernel = engine.runKernel;
  engine.runKernel = function (name, inputs, attrs) {
    if (depth > 0) { depth++; try { return runKernel.call(this, name, inputs, attrs); } finally { depth--; } }
    depth = 1;
    const s = performance.now();
    try { return runKernel.call(this, name, inputs, attrs); }
    finally {
      depth = 0;
      let extra = null;
      if (MATMUL.has(name) && inputs && inputs.a && inputs.b) extra = [inputs.a.shape, inputs.b.shape, attrs ? !!attrs.transposeB : false];
      rec('k', name, s, performance.now() - s, extra);
    }
  };
  const readSync = engine.readSync;
  engine.readSync = function (id) { const s = performance.now(); try { return readSync.call(this, id); } finally { if (depth === 0) rec('r', 'readSync', s, performance.now() - s); } };
  const read = engine.read;
  engine.read = function (id) { const s = performance.now(); const p = read.call(this, id); if (depth === 0) p.then(() => rec('r', 'read', s, performance.now() - s)); return p; };
  const makeTensor = engine.makeTensor;
  engine.makeTensor = function (v, shape, dtype, backend) { const s = performance.now(); try { return makeTensor.call(this, v, shape, dtype, backend); } finally { if (depth === 0) rec('m', 'makeTensor', s, performance.now() - s, [shape ? shape.reduce((a, b) => a * b, 1) : 0]); } };
}
// Blocking waits (the shared-memory collectives and queues park here): time spent waiting for another rank.
const wait = Atomics.wait;
Atomics.wait = function (ta, i, v, t) { const s = performance.now(); try { return wait(ta, i, v, t); } finally { const d = performance.now() - s; if (d > 0.002) rec('w', 'Atomics.wait', s, d); } };
let engine;
Object.defineProperty(globalThis, '_tfengine', { configurable: true, get() { return engine; }, set(e) { engine = e; if (e) patch(e); } });
setInterval(flush, 250).unref();
process.on('exit', flush);
`;

type Event = [kind: 'k' | 'r' | 'm' | 'w', name: string, startMs: number, durMs: number, extra: unknown];

const { values: v } = parseArgs({
  options: {
    shape: { type: 'string', default: 'tinyllama' },
    tp: { type: 'string', default: '2' },
    pp: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'tensorflow' },
    /** Weight format as bench:cpu names it: f32 (default), bf16, q8_0, q4_0 (weft's dtype / quantization options). */
    format: { type: 'string', default: 'f32' },
    prompt: { type: 'string', default: '128' },
    decode: { type: 'string', default: '32' },
    dir: { type: 'string', default: join(tmpdir(), 'weft-bench-cpu') },
    out: { type: 'string', default: 'bench-results/decode-profile.json' },
    child: { type: 'boolean', default: false },
    /** Analyse the events of an earlier run (its profile directory) instead of running. */
    analyse: { type: 'string' },
  },
});
const shape = SHAPES[String(v.shape)];
if (!shape) throw new Error(`unknown shape '${v.shape}' (have ${Object.keys(SHAPES).join(', ')})`);
const tp = Number(v.tp);
const pp = Number(v.pp);
const promptLen = Number(v.prompt);
const decodeSteps = Number(v.decode);
const log = (m: string) => process.stderr.write(`[decode-profile] ${m}\n`);
const modelDir = join(String(v.dir), `${shape.name}-${shape.layers}l-${shape.kvHeads}kv`);
const profileDir = v.analyse ?? join(tmpdir(), `weft-decode-profile-${process.env.WEFT_PROFILE_RUN ?? process.pid}`);

if (v.analyse) {
  analyse();
} else if (!v.child) {
  // Parent: write the hook, run this script again under it, then analyse.
  if (!hasRandomLlama(modelDir)) writeRandomLlama(modelDir, shape, log);
  rmSync(profileDir, { recursive: true, force: true });
  mkdirSync(profileDir, { recursive: true });
  const hook = join(profileDir, 'hook.cjs');
  writeFileSync(hook, HOOK);
  const cores = availableParallelism();
  const env = {
    ...process.env,
    WEFT_PROFILE_DIR: profileDir,
    WEFT_PROFILE_RUN: String(process.pid),
    TF_NUM_INTRAOP_THREADS: process.env.TF_NUM_INTRAOP_THREADS ?? String(Math.max(1, Math.floor(cores / (tp * pp)))),
    TF_NUM_INTEROP_THREADS: process.env.TF_NUM_INTEROP_THREADS ?? '1',
    TF_ENABLE_ONEDNN_OPTS: process.env.TF_ENABLE_ONEDNN_OPTS ?? '0',
    TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2',
  };
  log(`${shape.name} on ${v.backend}, tp ${tp} pp ${pp}, TF intra-op threads ${env.TF_NUM_INTRAOP_THREADS}; prompt ${promptLen}, ${decodeSteps} decode steps`);
  const r = spawnSync(process.execPath, ['--require', hook, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--child'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0 && !existsSync(join(profileDir, 'windows.json'))) throw new Error(`profiled run failed (exit ${r.status ?? r.signal})`);
  analyse();
} else {
  await profiledRun();
}

async function profiledRun(): Promise<void> {
  const { LLM } = await import('@weft/engine');
  const from = '@weft/engine';
  const prompt = Array.from({ length: promptLen }, (_, i) => 3 + ((i * 7919) % (shape!.vocab - 3)));
  const greedy = (n: number) => ({ maxTokens: n, temperature: 0, ignoreEos: true });
  const f = String(v.format);
  const formatOpts = f === 'f32' ? {} : f === 'bf16' ? { dtype: 'bfloat16' as const } : { dtype: 'bfloat16' as const, quantization: f === 'q8_0' ? ('int8' as const) : ('int4' as const) };
  const llm = await LLM.load(modelDir, { tp, pp, backend: v.backend as BackendName, timeoutMs: 600_000, ...formatOpts });
  const now = () => performance.timeOrigin + performance.now();
  const windows: Record<string, [number, number]> = {};
  // Each window its own prompt of the same length: no prefix cache can skip a prefill.
  const win = async (name: string, n: number, salt: number) => {
    const a = now();
    await llm.generate([prompt.map((t, i) => 3 + ((t + (i + 1) * salt * 31) % (shape!.vocab - 3)))], greedy(n));
    windows[name] = [a, now()];
  };
  try {
    await llm.generate([prompt.slice(0, 8)], greedy(4)); // warm-up
    await win('prefill', 1, 1);
    await win('full', 1 + decodeSteps, 2);
    await win('prefill2', 1, 3);
    await llm.generate([prompt.slice(0, 8)], greedy(2)); // traffic after the last window so every rank flushes
  } finally {
    await llm.close();
  }
  // The floor of one op and a decode-shaped matMul, on this thread's TF context with 1 intra-op thread.
  const micro = await microbench();
  writeFileSync(join(profileDir, 'windows.json'), JSON.stringify({ windows, from, weightBytesPerRank: (llm as { weightBytesPerRank?: number[] }).weightBytesPerRank, micro }));
  await new Promise((r) => setTimeout(r, 600));
}

async function microbench(): Promise<Record<string, number> | { error: string }> {
  if (v.backend !== 'tensorflow') return { error: 'only on tensorflow' };
  try {
    const tfjsNode = '@tensorflow/tfjs-node'; // by name at run time: never bundled
    const tf = (await import(/* @vite-ignore */ tfjsNode)) as typeof import('@tensorflow/tfjs-core');
    await tf.setBackend('tensorflow');
    const time = (fn: () => void, n: number) => {
      for (let i = 0; i < Math.min(n, 20); i++) fn();
      const t = performance.now();
      for (let i = 0; i < n; i++) fn();
      return ((performance.now() - t) / n) * 1000; // µs
    };
    const a = tf.ones([1, 8]);
    const addUs = time(() => tf.add(a, a).dispose(), 5000);
    const x = tf.randomNormal([1, shape!.hidden]);
    const w = tf.randomNormal([shape!.hidden, shape!.intermediate]);
    const mmUs = time(() => tf.matMul(x, w).dispose(), 200);
    const wT = tf.randomNormal([shape!.intermediate, shape!.hidden]);
    const mmTUs = time(() => tf.matMul(x, wT, false, true).dispose(), 200);
    const readUs = time(() => void tf.add(x, x).dataSync(), 2000);
    return { tiny_add_us: addUs, matmul_1xKxN_us: mmUs, matmul_1xKxN_transposeB_us: mmTUs, matmul_bytes: shape!.hidden * shape!.intermediate * 4, add_and_read_hidden_us: readUs, intra_op_threads: Number(process.env.TF_NUM_INTRAOP_THREADS) };
  } catch (e) {
    return { error: String((e as Error).message).split('\n')[0]! };
  }
}

function analyse(): void {
  const meta = JSON.parse(readFileSync(join(profileDir, 'windows.json'), 'utf8')) as { windows: Record<string, [number, number]>; from: string; weightBytesPerRank?: number[]; micro: Record<string, number> };
  const threads: Record<string, Event[]> = {};
  for (const f of readdirSync(profileDir).filter((n) => n.startsWith('thread-'))) {
    threads[f.replace(/\D/g, '')] = readFileSync(join(profileDir, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Event);
  }
  const { prefill, full, prefill2 } = meta.windows as Record<string, [number, number]>;
  const wall = (w: [number, number]) => w[1] - w[0];
  const prefillWall = (wall(prefill!) + wall(prefill2!)) / 2;
  const stepMs = (wall(full!) - prefillWall) / decodeSteps;
  // Ranks: the threads that ran kernels during the full window.
  const inWin = (e: Event, w: [number, number]) => e[2] >= w[0] && e[2] < w[1];
  const rankThreads = Object.entries(threads).filter(([, es]) => es.filter((e) => e[0] === 'k' && inWin(e, full!)).length > 100);
  const bw = measureNativeBandwidth([1, 2]);
  const classOf = (e: Event): string => {
    if (e[0] === 'r') return 'read (TF → JS)';
    if (e[0] === 'm') return 'makeTensor (JS → TF)';
    if (e[0] === 'w') return 'blocked in Atomics.wait (other ranks, driver)';
    const n = e[1];
    if (n === 'BatchMatMul' || n === '_FusedMatMul' || n === 'MatMul') {
      const [a, b] = e[4] as [number[], number[]];
      const k = a[a.length - 1]!;
      const bSize = b.reduce((x, y) => x * y, 1);
      // Weight matmuls: b is a 2-D (or batch-1) weight of ≥ hidden²/16 elements; the rest is attention (q·kᵀ, p·v).
      return bSize >= (shape!.hidden * shape!.hidden) / 16 && k >= 64 ? 'matmul (weights)' : 'matmul (attention)';
    }
    if (['Reshape', 'Slice', 'StridedSlice', 'Concat', 'ConcatV2', 'Transpose', 'GatherV2', 'Pack', 'Unpack', 'Tile', 'ExpandDims', 'Squeeze', 'Split', 'SplitV', 'Identity', 'Cast', 'Fill', 'ZerosLike', 'OnesLike', 'Range', 'BroadcastTo', 'ScatterNd', 'TensorScatterUpdate', 'Pad', 'PadV2', 'Reverse', 'MirrorPad', 'GatherNd', 'OneHot', 'Clone'].includes(n)) return 'layout (reshape/slice/concat/gather/cast…)';
    return 'elementwise and reductions';
  };
  const perRank = rankThreads.map(([tid, es]) => {
    const sum = (w: [number, number]) => {
      const byName = new Map<string, { count: number; ms: number; cls: string }>();
      const byClass = new Map<string, { count: number; ms: number }>();
      for (const e of es) {
        if (!inWin(e, w)) continue;
        const cls = classOf(e);
        // Weight matmuls by shape; attention matmuls (their key length grows each step) by kind.
        const key = cls === 'matmul (weights)' ? `${e[1]} ${JSON.stringify(e[4])}` : cls === 'matmul (attention)' ? `${e[1]} attention${(e[4] as unknown[])[2] ? ' q·kᵀ' : ' p·v'}` : e[1];
        const a = byName.get(key) ?? { count: 0, ms: 0, cls };
        a.count++;
        a.ms += e[3];
        byName.set(key, a);
        const c = byClass.get(cls) ?? { count: 0, ms: 0 };
        c.count++;
        c.ms += e[3];
        byClass.set(cls, c);
      }
      return { byName, byClass };
    };
    // Per kernel name, the durations of its calls in the full window: on a shared machine a call can be
    // descheduled midway, so the median (short ops) or the minimum (long matmuls) is what the op costs.
    const durations = new Map<string, number[]>();
    for (const e of es) {
      if (!inWin(e, full!)) continue;
      const cls = classOf(e);
      const key = cls === 'matmul (weights)' ? `${e[1]} ${JSON.stringify(e[4])}` : cls === 'matmul (attention)' ? `${e[1]} attention${(e[4] as unknown[])[2] ? ' q·kᵀ' : ' p·v'}` : e[1];
      (durations.get(key) ?? durations.set(key, []).get(key)!).push(e[3]);
    }
    const f = sum(full!);
    const p1 = sum(prefill!);
    const p2 = sum(prefill2!);
    const perStep = <T extends { count: number; ms: number }>(fm: Map<string, T>, a: Map<string, T>, b: Map<string, T>) =>
      [...fm].map(([k, x]) => {
        const pc = ((a.get(k)?.count ?? 0) + (b.get(k)?.count ?? 0)) / 2;
        const pm = ((a.get(k)?.ms ?? 0) + (b.get(k)?.ms ?? 0)) / 2;
        return { key: k, cls: (x as { cls?: string }).cls, count: (x.count - pc) / decodeSteps, ms: (x.ms - pm) / decodeSteps };
      }).filter((r) => r.count > 0.01).sort((x, y) => y.ms - x.ms);
    const classes = perStep(f.byClass, p1.byClass, p2.byClass);
    const names = perStep(f.byName, p1.byName, p2.byName).map((n) => {
      const d = durations.get(n.key) ?? [];
      const medianUs = d.length ? med(d) * 1000 : NaN;
      const minUs = d.length ? Math.min(...d) * 1000 : NaN;
      const typicalUs = n.cls?.startsWith('matmul') ? minUs : medianUs;
      return { ...n, medianUs, minUs, typicalMs: n.key === 'Atomics.wait' ? 0 : (n.count * typicalUs) / 1000 };
    });
    // What a step's ops would cost undisturbed: count × median (min for matmuls), waits excluded.
    const typical = new Map<string, number>();
    for (const n of names) typical.set(n.cls ?? '', (typical.get(n.cls ?? '') ?? 0) + n.typicalMs);
    const opsPerStep = classes.filter((c) => !/^(read|makeTensor|blocked)/.test(c.key)).reduce((a, c) => a + c.count, 0);
    const accounted = classes.reduce((a, c) => a + c.ms, 0);
    const typicalClasses = [...typical].map(([cls, ms]) => ({ cls, ms })).sort((a, b) => b.ms - a.ms);
    return { thread: tid, opsPerStep, opsPerLayer: opsPerStep / (shape!.layers / pp), accountedMs: accounted, outsideMs: stepMs - accounted, classes, names, typicalClasses, typicalStepMs: typicalClasses.reduce((a, c) => a + c.ms, 0) };
  });
  const weightBytes = meta.weightBytesPerRank ?? [];
  const bw1 = bw.gbPerS?.[1] ?? NaN;
  const report = {
    date: new Date().toISOString(), shape, tp, pp, backend: v.backend, llm_from: meta.from, prompt: promptLen, decode_steps: decodeSteps,
    decode_tok_s: 1000 / stepMs, step_ms: stepMs, prefill_ms: prefillWall, bandwidth_gb_s: bw.gbPerS, weight_bytes_per_rank: weightBytes,
    matmul_at_bandwidth_ms: weightBytes.length ? (Math.max(...weightBytes) / (bw1 * 1e9)) * 1000 : null,
    micro: meta.micro, ranks: perRank,
  };
  mkdirSync(dirname(String(v.out)), { recursive: true });
  writeFileSync(String(v.out), JSON.stringify(report, null, 2));
  console.log(`\nweft decode on ${v.backend}, ${shape!.name} (${(paramCount(shape!) / 1e6).toFixed(0)} M), tp ${tp} pp ${pp}: ${report.decode_tok_s.toFixed(2)} tok/s, ${stepMs.toFixed(1)} ms per step (profiled)`);
  if (report.matmul_at_bandwidth_ms) console.log(`weights per rank ${(Math.max(...weightBytes) / 1e9).toFixed(2)} GB: at ${bw1.toFixed(1)} GB/s (1 thread) a step's matmuls need ≥ ${report.matmul_at_bandwidth_ms.toFixed(1)} ms`);
  if (!('error' in meta.micro)) console.log(`floor: tiny add ${meta.micro.tiny_add_us!.toFixed(1)} µs; [1×${shape!.hidden}]·[${shape!.hidden}×${shape!.intermediate}] ${meta.micro.matmul_1xKxN_us!.toFixed(0)} µs (${(meta.micro.matmul_bytes! / meta.micro.matmul_1xKxN_us! / 1e3).toFixed(1)} GB/s), transposed b ${meta.micro.matmul_1xKxN_transposeB_us!.toFixed(0)} µs; add + dataSync of [1×${shape!.hidden}] ${meta.micro.add_and_read_hidden_us!.toFixed(1)} µs`);
  for (const r of perRank) {
    console.log(`\nthread ${r.thread}: ${r.opsPerStep.toFixed(0)} kernels per step (${r.opsPerLayer.toFixed(1)} per layer), ${r.accountedMs.toFixed(1)} ms in kernels, reads, creations and waits, ${r.outsideMs.toFixed(1)} ms outside them (JS between ops, messages)`);
    console.log('| class | per step | ms per step | µs each | share of step |');
    console.log('| --- | --- | --- | --- | --- |');
    for (const c of r.classes) console.log(`| ${c.key} | ${c.count.toFixed(1)} | ${c.ms.toFixed(2)} | ${((c.ms / c.count) * 1000).toFixed(1)} | ${((c.ms / stepMs) * 100).toFixed(0)} % |`);
    console.log(`| outside kernels | | ${r.outsideMs.toFixed(2)} | | ${((r.outsideMs / stepMs) * 100).toFixed(0)} % |`);
    console.log(`\nundisturbed estimate (count × median µs, min for matmuls; waits and JS between ops left out): ${r.typicalStepMs.toFixed(1)} ms per step`);
    for (const c of r.typicalClasses) console.log(`  ${c.cls.padEnd(48)} ${c.ms.toFixed(2).padStart(8)} ms (${((c.ms / r.typicalStepMs) * 100).toFixed(0)} %)`);
    console.log('\nkernels: per step, ms per step (wall), mean / median / min µs per call:');
    for (const n of r.names.slice(0, 32)) console.log(`  ${n.key.padEnd(56)} ${n.count.toFixed(1).padStart(6)} ${n.ms.toFixed(2).padStart(8)} ms ${((n.ms / n.count) * 1000).toFixed(1).padStart(8)} ${n.medianUs.toFixed(1).padStart(8)} ${n.minUs.toFixed(1).padStart(8)}`);
  }
  log(`wrote ${v.out}`);
}
