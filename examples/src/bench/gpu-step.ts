/**
 * bench gpu-step (issue 20): the WebGPU executor's decode step end to end on the GPU machine, on bench:gpu's
 * TinyLlama-1.1B-shaped checkpoint (`gpu.js --write-only` writes it). Per weight format and row count:
 * - `loop`: after 1.5 s of the same step on the GPU (it clocks down while the host works; `--no-warm` shows
 *   the ramp), decode as an engine runs it (one step, one read-back, the next step's command buffer recorded
 *   while the GPU runs), traced step by step — host: inputs written, submitted, next recorded,
 *   onSubmittedWorkDone, read-back mapped; GPU: the step's pass begin/end timestamps, so its duration in the
 *   loop and the GPU's idle gap before the next step; every step's host phases and the process's CPU time, V8's
 *   collections during the loop, and the longest step laid out (host-stalls.ts: which phase, GPU time, idle gap
 *   after, collections inside it);
 * - `alone`: the same step 10 times in one submit (the GPU time bench:gpu reports);
 * - `back_to_back`: 32 steps in 32 submits without waiting (no host gap);
 * - `spaced`: steps with the GPU idle 0 / 1 / 5 ms between them (a GPU that clocks down shows here);
 * - `classes`: µs per kernel tag, each alone (timestamps, 10 runs);
 * - at 17–64 rows (`--chunk-rows`) the chunked tiled GEMV against the GEMM (`gemvMaxRows: 16`);
 * - `--variants`: kernel tunings against the defaults (loop + alone) at `--rows`;
 * - `--toggles`: bf16 again on a Dawn instance with robustness (bounds clamps in every shader) off (on the
 *   H200 the second Vulkan instance aborted the process: std::system_error, 2026-12-03 20:02).
 *
 * usage: node examples/dist/bench/gpu-step.js --dir CK [--formats bf16,q4_0] [--rows 1,16] [--chunk-rows 24,32,48,64]
 *          [--steps 32] [--variants chunk8:16+64,nosplit,…] [--variant-rows 1,16] [--no-warm] [--toggles]
 *          [--gemv-table gemv-choice.json (adds the variant `swept`)] [--gc-before] [--count-polls] [--out gpu-step.json]
 */
/// <reference types="@webgpu/types" />
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { initBackend, webgpuOptionsFromEnv } from '@weft/core';
import { requestDevice, StepTrace, subgroupSize, type KernelTuning, type StepTiming, type WebGpuPlanExecutor } from '@weft/layers';
import { loadPlanExecutor, PLAN_FORMATS, stepOf, warmGpu } from './gpu-plan.js';
import { median } from './stats.js';
import { CpuLog, GcLog, gpuMs, longestStep, PollCount, stallLine } from './host-stalls.js';
import { STEP_VARIANTS } from './gpu-step-variants.js';
import { gemvTableTuning, type GemvChoice } from './gpu-gemv-table.js';

const { values: v } = parseArgs({
  options: {
    dir: { type: 'string' },
    formats: { type: 'string', default: 'bf16,q4_0' },
    rows: { type: 'string', default: '1,16' },
    'chunk-rows': { type: 'string', default: '24,32,48,64' },
    steps: { type: 'string', default: '32' },
    variants: { type: 'string', default: '' },
    /** Row counts the variants run at (default --rows). */
    'variant-rows': { type: 'string' },
    toggles: { type: 'boolean', default: false },
    /** bench gpu-kernels' `--choice-out`: adds the variant `swept` (each linear its chosen GEMV shape). */
    'gemv-table': { type: 'string' },
    /** No warm-up before each traced loop (shows the GPU's clock ramp after host work). */
    'no-warm': { type: 'boolean', default: false },
    /** A full V8 collection before each traced loop (are the long steps collections of what loading and warming left?). */
    'gc-before': { type: 'boolean', default: false },
    /** Count dawn-node's polls (setImmediate calls) per step (wraps the global: opt-in). */
    'count-polls': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-results/gpu-step.json' },
  },
});
if (!v.dir) throw new Error('gpu-step: --dir (bench:gpu checkpoint) is required');
const log = (m: string) => process.stderr.write(`[gpu-step] ${m}\n`);
const STEPS = Number(v.steps);
const WARM = !v['no-warm'];
const BLOCK = 16;
const SEQ_BLOCKS = Math.ceil((8 + STEPS + 8) / BLOCK);
const MAX_SEQS = 64;
// Row counts; anything else ('none') drops out, so STEP_ARGS can say --chunk-rows none.
const nums = (s: string) => s.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
const r3 = (x: number) => +x.toFixed(3);
const med = (xs: number[]) => r3(median(xs.filter(Number.isFinite)));
const gcLog = new GcLog();
const cpuLog = new CpuLog();
const fullGc = v['gc-before'] ? exposeGc() : null;
const polls = v['count-polls'] ? new PollCount() : null;
const pollsEach: number[] = [];

/** V8's gc() without --expose-gc on the command line (the bundle's `node` call stays the same). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

interface Seqs {
  tables: number[][];
  toks: number[];
  ctx: number;
}

/** m sequences of 8 prompt tokens prefilled in one step. */
async function prefill(ex: WebGpuPlanExecutor, m: number): Promise<Seqs> {
  const tables = Array.from({ length: m }, (_, s) => Array.from({ length: SEQ_BLOCKS }, (_, i) => s * SEQ_BLOCKS + i));
  const prompts = Array.from({ length: m }, (_, s) => Array.from({ length: 8 }, (_, i) => 3 + ((i * 104729 + s * 7919) % 31997)));
  const r = await ex.step(stepOf(prompts, prompts.map(() => 0), tables, BLOCK));
  return { tables, toks: Array.from(r.greedy!), ctx: 8 };
}

/** n decode steps; returns every greedy id (step-major). */
async function decode(ex: WebGpuPlanExecutor, s: Seqs, n: number): Promise<number[]> {
  const ids: number[] = [];
  for (let t = 0; t < n; t++) {
    cpuLog.begin();
    const p0 = polls?.n ?? 0;
    const r = await ex.step(stepOf(s.toks.map((x) => [x]), s.toks.map(() => s.ctx), s.tables, BLOCK));
    cpuLog.end();
    if (polls) pollsEach.push(polls.n - p0);
    s.toks = Array.from(r.greedy!);
    ids.push(...s.toks);
    s.ctx++;
  }
  return ids;
}

/** The default kernels' greedy ids per format and row count: each other tuning's loop is checked against them. */
const reference = new Map<string, number[]>();


/**
 * Medians of a traced run of steps: host phases (ms) and the GPU's duration and idle gap before the next step;
 * each step's phases, CPU time and the longest step (host-stalls.ts), V8's collections over the run, the heap.
 */
function summary(ts: StepTiming[], rows: number): Record<string, unknown> {
  const gaps = ts.slice(1).map((t, i) => (t.gpuBegin !== undefined && ts[i]!.gpuEnd !== undefined ? (t.gpuBegin - ts[i]!.gpuEnd!) / 1e6 : NaN));
  const wall = ts.length ? (ts[ts.length - 1]!.end - ts[0]!.start) / ts.length : NaN;
  return {
    tok_s: r3((rows / wall) * 1000),
    step_ms: r3(wall),
    gpu_ms: med(ts.map(gpuMs)),
    gpu_gap_ms: med(gaps),
    host_write_ms: med(ts.map((t) => t.written - t.start)),
    host_submit_ms: med(ts.map((t) => t.submitted - t.written)),
    host_record_next_ms: med(ts.map((t) => t.recorded - t.submitted)),
    host_slept_ms: med(ts.map((t) => t.slept)),
    submit_to_done_ms: med(ts.map((t) => t.done - t.submitted)),
    submit_to_mapped_ms: med(ts.map((t) => t.mapped - t.submitted)),
    gpu_ms_each: ts.map((t) => r3(gpuMs(t))),
    gap_ms_each: gaps.map(r3),
    step_ms_each: ts.map((t) => r3(t.end - t.start)),
    record_next_ms_each: ts.map((t) => r3(t.recorded - t.submitted)),
    wait_mapped_ms_each: ts.map((t) => r3(t.mapped - t.recorded)),
    cpu_ms_each: cpuLog.each.slice(-ts.length),
    ...(polls ? { polls_each: pollsEach.slice(-ts.length), polls_median: median(pollsEach.slice(-ts.length)) } : {}),
    step_ms_max: r3(Math.max(...ts.map((t) => t.end - t.start))),
    longest: longestStep(ts, gcLog, cpuLog.each.slice(-ts.length)),
    gc: ts.length ? gcLog.summary(ts[0]!.start, ts[ts.length - 1]!.end) : {},
    heap_mb: memory(),
  };
}

const memory = () => {
  const m = process.memoryUsage();
  return { heap_used: r3(m.heapUsed / 2 ** 20), external: r3(m.external / 2 ** 20), array_buffers: r3(m.arrayBuffers / 2 ** 20), rss: r3(m.rss / 2 ** 20) };
};

/** The traced loop; `ref`: where the default kernels' greedy ids are kept (the first run) or compared (token_mismatch: the fraction that differ). */
async function loop(ex: WebGpuPlanExecutor, tr: StepTrace, m: number, ref: string, n = STEPS): Promise<Record<string, unknown>> {
  const s = await prefill(ex, m);
  const first = s.toks.slice();
  const warm = await decode(ex, s, 3);
  // The GPU clocks down while the host prefills and compiles: time at its working clock (`--no-warm` shows the ramp).
  if (WARM) {
    ex.prepare(stepOf(s.toks.map((x) => [x]), s.toks.map(() => s.ctx), s.tables, BLOCK));
    await warmGpu(ex, m, m);
  }
  fullGc?.();
  tr.clear();
  cpuLog.clear();
  pollsEach.length = 0;
  const ids = [...first, ...warm, ...(await decode(ex, s, n))];
  await gcLog.settle();
  const out = summary(await tr.read(), m);
  const base = reference.get(ref);
  if (!base) reference.set(ref, ids);
  else out.token_mismatch = r3(ids.filter((x, i) => x !== base[i]).length / ids.length);
  return out;
}

/** One submit of `reps` runs of the step's kernels (those passing `only`): GPU ms per run by timestamps, wall ms per run. */
async function alone(ex: WebGpuPlanExecutor, tr: StepTrace, m: number, reps = 10, only?: () => (tag: string) => boolean): Promise<{ gpu_ms: number; wall_ms: number }> {
  const dev = ex.device;
  tr.clear();
  const walls: number[] = [];
  for (let r = 0; r < 4; r++) {
    const t = tr.begin(m);
    t.slot = tr.take();
    const enc = dev.createCommandEncoder();
    for (let i = 0; i < reps; i++) {
      const w = reps === 1 ? 'both' : i === 0 ? 'begin' : i === reps - 1 ? 'end' : null;
      ex.encode(enc, m, m, only?.(), true, w ? tr.passWrites(t.slot, w) : undefined);
    }
    tr.resolve(enc, t.slot);
    const cb = enc.finish();
    await dev.queue.onSubmittedWorkDone();
    t.start = performance.now();
    dev.queue.submit([cb]);
    await dev.queue.onSubmittedWorkDone();
    t.end = performance.now();
    if (r) walls.push((t.end - t.start) / reps);
  }
  const ts = (await tr.read()).slice(1);
  return { gpu_ms: med(ts.map((t) => gpuMs(t) / reps)), wall_ms: med(walls) };
}

/** `n` steps, each its own submit; `idleMs` null: no wait between them, else the GPU idles that long after each. */
async function submits(ex: WebGpuPlanExecutor, tr: StepTrace, m: number, n: number, idleMs: number | null): Promise<Record<string, number | number[]>> {
  const dev = ex.device;
  tr.clear();
  for (let i = 0; i < n; i++) {
    const t = tr.begin(m);
    t.slot = tr.take();
    const enc = dev.createCommandEncoder();
    ex.encode(enc, m, m, undefined, true, tr.passWrites(t.slot));
    tr.resolve(enc, t.slot);
    dev.queue.submit([enc.finish()]);
    if (idleMs !== null) {
      await dev.queue.onSubmittedWorkDone();
      for (const t0 = performance.now(); performance.now() - t0 < idleMs; );
    }
    t.end = performance.now();
  }
  await dev.queue.onSubmittedWorkDone();
  const ts = await tr.read();
  const gaps = ts.slice(1).map((t, i) => (t.gpuBegin! - ts[i]!.gpuEnd!) / 1e6);
  return { gpu_ms: med(ts.slice(1).map(gpuMs)), gpu_gap_ms: med(gaps), gpu_ms_each: ts.map((t) => r3(gpuMs(t))) };
}

/**
 * A step's kernel class: its tag, with the Llama step's `linear` dispatches told apart by their order
 * (per layer o then down, the LM head last).
 */
function classOf(tag: string, occurrence: number, linears: number): string {
  if (tag !== 'linear') return tag;
  return occurrence === linears - 1 ? 'lm_head' : occurrence % 2 ? 'down' : 'o';
}

/** µs per kernel class at m rows, each alone, 10 runs in one submit (timestamps). */
async function classes(ex: WebGpuPlanExecutor, tr: StepTrace, m: number, only?: (tag: string) => boolean): Promise<Record<string, number>> {
  const tags = ex.tags(m, m);
  const linears = tags.filter((t) => t === 'linear').length;
  const names = [...new Set(tags.map((t, i) => classOf(t, tags.slice(0, i).filter((x) => x === t).length, linears)))].filter((c) => !only || only(c));
  const out: Record<string, number> = {};
  for (const name of names) {
    // One filter per encode: it counts each tag's kernels in order.
    const pick = () => {
      const seen = new Map<string, number>();
      return (tag: string) => {
        const k = seen.get(tag) ?? 0;
        seen.set(tag, k + 1);
        return classOf(tag, k, linears) === name;
      };
    };
    out[name] = +((await alone(ex, tr, m, 10, pick)).gpu_ms * 1000).toFixed(1);
  }
  return out;
}

/** Every measurement of one executor at m rows. */
async function atRows(ex: WebGpuPlanExecutor, tr: StepTrace, m: number, full: boolean, ref: string): Promise<Record<string, unknown>> {
  const res: Record<string, unknown> = { at: new Date().toISOString(), loop: await loop(ex, tr, m, `${ref}/${m}`) };
  ex.prepare(stepOf(Array.from({ length: m }, () => [5]), Array.from({ length: m }, () => 8), Array.from({ length: m }, (_, s) => Array.from({ length: SEQ_BLOCKS }, (_, i) => s * SEQ_BLOCKS + i)), BLOCK));
  res.alone = await alone(ex, tr, m);
  res.dispatches = ex.tags(m, m).length;
  if (full) {
    res.back_to_back = await submits(ex, tr, m, 32, null);
    for (const idle of [0, 1, 5]) res[`spaced_${idle}ms`] = await submits(ex, tr, m, 12, idle);
    res.classes = await classes(ex, tr, m);
  }
  const l = res.loop as Record<string, number>;
  log(`${ref} m=${m}: loop ${l.step_ms} ms/step (${l.tok_s} tok/s), GPU in loop ${l.gpu_ms} ms, gap ${l.gpu_gap_ms} ms, alone ${(res.alone as { gpu_ms: number }).gpu_ms} ms; submit→done ${l.submit_to_done_ms}, submit→mapped ${l.submit_to_mapped_ms}, record next ${l.host_record_next_ms}${l.token_mismatch !== undefined ? `; greedy ids differing from the defaults ${l.token_mismatch}` : ''}`);
  log(`${ref} m=${m}: ${stallLine((res.loop as { longest: Record<string, unknown> | null }).longest)}; GC in the loop ${JSON.stringify((res.loop as { gc: unknown }).gc)}${polls ? `; dawn-node polls a step (median) ${String((res.loop as { polls_median: number }).polls_median)}` : ''}`);
  return res;
}

async function ownDawnDevice(flags: string[]): Promise<GPUDevice> {
  // Not bundled: the npm package 'webgpu' beside the bundle (Dawn's prebuilt binary).
  const name = 'webgpu';
  const webgpu = (await import(name)) as { create: (o: string[]) => GPU };
  return requestDevice('gpu-step', webgpu.create(['backend=vulkan', ...flags]));
}

// WEFT_WEBGPU_DAWN_FEATURES (e.g. allow_unsafe_apis,skip_validation,disable_robustness) on the one Dawn instance of
// the process: a second instance with other toggles (--toggles) aborted on the H200.
const webgpuEnv = webgpuOptionsFromEnv(process.env);
await initBackend({ prefer: 'webgpu', webgpu: webgpuEnv });
await initBackend({ prefer: 'cpu' });
const result: Record<string, unknown> = { date: new Date().toISOString(), steps: STEPS, dawn_features: webgpuEnv.dawnFeatures ?? [] };
if (v['gemv-table']) {
  const table = JSON.parse(readFileSync(String(v['gemv-table']), 'utf8')) as GemvChoice[];
  result.gemv_table = table;
  STEP_VARIANTS.swept = () => gemvTableTuning(table);
}
const save = () => {
  mkdirSync(dirname(String(v.out)), { recursive: true });
  writeFileSync(String(v.out), JSON.stringify(result));
};
const runs: [string, string, string[] | null][] = String(v.formats).split(',').map((f) => [f, f, null]);
if (v.toggles) runs.push(['bf16 robustness off', 'bf16', ['enable-dawn-features=allow_unsafe_apis,disable_robustness', 'disable-dawn-features=timestamp_quantization']]);
for (const [label, fmt, flags] of runs) {
  const format = PLAN_FORMATS[fmt];
  if (!format) throw new Error(`--formats: unknown ${fmt}`);
  const t0 = performance.now();
  const device = flags ? await ownDawnDevice(flags) : await requestDevice('gpu-step');
  const trace = new StepTrace(device);
  const ex = await loadPlanExecutor(String(v.dir), format, { maxRows: 512, maxSeqs: MAX_SEQS, maxModelLen: SEQ_BLOCKS * BLOCK, device, trace });
  const r: Record<string, unknown> = { load_s: r3((performance.now() - t0) / 1000), timestamps: trace.timestamps, subgroup_size: subgroupSize(device) };
  result[label] = r;
  log(`${label}: loaded in ${r.load_s} s; timestamps ${trace.timestamps}; subgroup size ${r.subgroup_size}`);
  try {
    await ex.initCaches(MAX_SEQS * SEQ_BLOCKS + 4, BLOCK);
    for (const m of nums(String(v.rows))) {
      r[`rows_${m}`] = await atRows(ex, trace, m, !flags, fmt);
      save();
    }
    if (flags) continue;
    for (const m of nums(String(v['chunk-rows']))) {
      const c: Record<string, unknown> = {};
      for (const [name, tuning] of [['gemv_chunked', {}], ['gemm', { gemvMaxRows: 16 }]] as [string, KernelTuning][]) {
        ex.retune(tuning);
        c[name] = { ...(await atRows(ex, trace, m, false, fmt)), classes: await classes(ex, trace, m, (t) => t.includes('linear') || t === 'o' || t === 'down' || t === 'lm_head') };
      }
      ex.retune({});
      r[`chunk_${m}`] = c;
      save();
    }
    for (const spec of String(v.variants).split(',').filter(Boolean)) {
      // name or name:rows+rows (the row counts this variant runs at; default --variant-rows or --rows)
      const [name, at] = spec.split(':') as [string, string | undefined];
      const tuning = STEP_VARIANTS[name]?.(fmt, subgroupSize(device));
      if (!tuning) {
        log(`variant ${name}: not for ${fmt} on this device`);
        continue;
      }
      ex.retune(tuning);
      const vr: Record<string, unknown> = {};
      for (const m of nums(at ? at.replaceAll('+', ',') : String(v['variant-rows'] ?? v.rows))) vr[`rows_${m}`] = { ...(await atRows(ex, trace, m, false, fmt)), classes: await classes(ex, trace, m) };
      r[`variant_${name}`] = vr;
      ex.retune({});
      save();
    }
  } finally {
    ex.dispose();
    trace.destroy();
    device.destroy();
  }
}
save();
log(`wrote ${v.out}`);
process.exit(0);
