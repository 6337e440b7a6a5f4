/**
 * bench:gpu's measurement of the device plan on the WebGPU executor (issue 20), each timing after 0.5 s of
 * the same work on the GPU (`warmGpu`): bench:gpu's
 * TinyLlama-shaped random checkpoint (the one transformers runs in the same run), loaded as the engine loads a
 * rank (LlamaForCausalLM, `loadWeights` in each weight format, on the cpu tfjs backend), its
 * `recordPlan()` run by `WebGpuPlanExecutor`: prefill of one long prompt, greedy decode at each batch
 * (each step read back: what an engine loop pays), the GPU's own time per step (10 steps in one submit),
 * µs per step by kernel, encode time, host overhead, dispatches and the fraction of the weight-bandwidth
 * bound. `checkPlan` runs the Llama fixtures through the executor against tfjs and Hugging Face.
 */
import { GroupCoordinator, SoloCommunicator, type ParallelState } from '@weft/comm';
import { Checkpoint, initBackend, resolveParallelConfig, type WeightFormat } from '@weft/core';
import { buildAttentionMetadata, GpuWait, loadWeights, positionsOf, QuantizationConfig, WebGpuPlanExecutor, WEBGPU_PARITY_BOUNDS, webgpuFixtureCheck, type KernelTuning, type PlanStepInput, type WebGpuPlanExecutorOptions } from '@weft/layers';
import { registration } from '@weft/llama';
import { median } from './stats.js';
import { GcLog } from './host-stalls.js';

export const PLAN_FORMATS: Record<string, WeightFormat> = {
  fp32: { dtype: 'float32', quantization: null },
  bf16: { dtype: 'bfloat16', quantization: null },
  q8_0: { dtype: 'bfloat16', quantization: 'q8_0' },
  q4_0: { dtype: 'bfloat16', quantization: 'q4_0' },
};

export interface PlanBenchOptions {
  dir: string;
  formats: string[];
  batches: number[];
  promptLen: number;
  decodeTokens: number;
  /** Bytes/s of the GPU's memory, for the bound. */
  bandwidth: number;
  log: (m: string) => void;
  /** Kernel shapes other than the executor's defaults (the row's engine name gets `label`). */
  tuning?: { label: string; kernels: KernelTuning };
}

export interface PlanBenchRow {
  engine: string;
  dtype: string;
  batch: number;
  prefill_tok_s: number;
  decode_tok_s: number;
  /** From the median step (host stalls of 4–80 ms, one in 30–60 steps on the H200 lease, weigh on the mean). */
  decode_tok_s_median: number;
  step_ms_median: number;
  step_ms_max: number;
  /** The longest step's index in the loop and the ms of V8's collections inside it; collections over the loop by kind. */
  step_max_index: number;
  step_max_gc_ms: number;
  gc_in_decode: Record<string, { n: number; ms: number; max_ms: number }>;
  dispatches_per_step: number;
  /** ms per decode step read back every step; the GPU alone (10 steps in one submit). */
  step_ms: number;
  gpu_step_ms: number;
  encode_ms: number;
  host_overhead_ms: number;
  bandwidth_fraction: number;
  weight_gb: number;
  kernel_us: Record<string, number>;
  prefill_kernel_us: Record<string, number>;
  prefill_dispatches: number;
  load_s: number;
}

function soloState(): ParallelState {
  const g = (kind: string) => new GroupCoordinator({ rank: 0, ranks: [0], uniqueName: `${kind}:0`, cpuGroup: new SoloCommunicator(`${kind}:0`) });
  return { rank: 0, worldSize: 1, config: resolveParallelConfig({}), world: g('world'), tp: g('tp'), pp: g('pp'), dp: g('dp'), ep: g('ep') };
}

/** A step of `tokens[s]` new tokens per sequence after `context[s]` cached ones. */
export function stepOf(tokens: number[][], context: number[], tables: number[][], blockSize: number): PlanStepInput {
  const meta = buildAttentionMetadata(tokens.map((t, s) => ({ seqId: s, queryLen: t.length, contextLen: context[s]!, blockTable: tables[s]! })), blockSize);
  return {
    tokenIds: Int32Array.from(tokens.flat()),
    positions: positionsOf(meta),
    seqs: meta.seqs,
    blockSize,
    sampledRows: Int32Array.from(meta.seqs.map((s) => s.start + s.queryLen - 1)),
    logitsRows: tokens.map(() => false),
  };
}

/**
 * Keeps the GPU busy with the prepared step (`ex.prepare`) for `ms`. The H200 of these runs idles at 345 MHz
 * and needs 0.1–0.6 s of load (more for light 1-row steps: still 2.6 ms a step after 0.5 s, 1.05 at full
 * clock) to reach 1,980: steps timed right after host work (loading, quantizing, a prefill) ran 2.5–4.8×
 * slower on the GPU (bench gpu-step, 2026-12-03 20:01 and 20:24; the 17:47 run's "host share" at 16 rows was this).
 * The host sleeps through most of each wait (GpuWait): 1.5 s of dawn-node's polling would leave ~10⁵ finalizable
 * functions for a long collection inside the loop timed next.
 */
export async function warmGpu(ex: WebGpuPlanExecutor, T: number, S: number, decode = T === S, ms = 1500): Promise<void> {
  const dev = ex.device;
  const wait = new GpuWait();
  for (const t0 = performance.now(); performance.now() - t0 < ms; ) {
    const enc = dev.createCommandEncoder();
    for (let i = 0; i < 4; i++) ex.encode(enc, T, S, undefined, decode);
    dev.queue.submit([enc.finish()]);
    const from = wait.before('warm');
    await dev.queue.onSubmittedWorkDone();
    wait.learn('warm', from);
  }
}

/** A family's rank as loadPlanExecutor needs it. */
export type PlanModel = Pick<ReturnType<typeof registration.createModel>, 'parameters' | 'stackedParams' | 'ignoreTensor' | 'recordPlan' | 'dispose'>;

/**
 * bench:gpu's checkpoint loaded as the engine loads a rank, its plan on a WebGPU executor (`opts`: the
 * executor's options but the plan); `createModel`: another family's rank (default Llama).
 */
export async function loadPlanExecutor(
  dir: string,
  format: WeightFormat,
  opts: Omit<WebGpuPlanExecutorOptions, 'plan'>,
  createModel: (dir: string, state: ParallelState, maxModelLen: number) => PlanModel = (d, s, maxModelLen) => registration.createModel(d, s, { maxModelLen }),
): Promise<WebGpuPlanExecutor> {
  const { maxModelLen } = opts;
  const model = createModel(dir, soloState(), maxModelLen);
  try {
    const ck = Checkpoint.open(dir);
    try {
      loadWeights({ params: model.parameters(), checkpoint: ck, stacked: model.stackedParams, ignore: (n) => model.ignoreTensor(n), quantization: new QuantizationConfig(format) });
    } finally {
      ck.close();
    }
    // The executor holds its own copy on the GPU: the host copies go when the model is disposed.
    return await WebGpuPlanExecutor.create({ ...opts, plan: model.recordPlan() });
  } finally {
    model.dispose();
  }
}

/**
 * The GPU's own time of a step of T rows (S sampled) in ms, `reps` steps in one submit (median of 3), only the
 * kernels whose tag passes `only`; and µs per kernel tag.
 */
export function planTimers(ex: WebGpuPlanExecutor) {
  const dev = ex.device;
  const timeGpu = async (T: number, S: number, only?: (tag: string) => boolean, reps = 10) => {
    const runs: number[] = [];
    for (let r = 0; r < 3; r++) {
      const enc = dev.createCommandEncoder();
      for (let i = 0; i < reps; i++) ex.encode(enc, T, S, only);
      const cb = enc.finish();
      await dev.queue.onSubmittedWorkDone();
      const t1 = performance.now();
      dev.queue.submit([cb]);
      await dev.queue.onSubmittedWorkDone();
      runs.push((performance.now() - t1) / reps);
    }
    return median(runs);
  };
  const byKernel = async (T: number, S: number, reps: number) => {
    const out: Record<string, number> = {};
    for (const tag of [...new Set(ex.tags(T, S))]) out[tag] = +((await timeGpu(T, S, (x) => x === tag, reps)) * 1000).toFixed(1);
    return out;
  };
  return { timeGpu, byKernel };
}

export async function benchPlan(o: PlanBenchOptions): Promise<PlanBenchRow[]> {
  await initBackend({ prefer: 'webgpu' });
  // The weights load into host tensors; the executor uploads them to its own device.
  await initBackend({ prefer: 'cpu' });
  const rows: PlanBenchRow[] = [];
  const gcLog = new GcLog();
  const maxB = Math.max(...o.batches);
  const blockSize = 16;
  const promptBlocks = Math.ceil((o.promptLen + 1) / blockSize);
  const seqBlocks = Math.ceil((8 + o.decodeTokens + 12) / blockSize);
  const numBlocks = promptBlocks + maxB * seqBlocks + 4;
  const maxModelLen = Math.max(o.promptLen + 16, 128);
  for (const name of o.formats) {
    const format = PLAN_FORMATS[name];
    if (!format) throw new Error(`--plan-formats: unknown format ${name} (${Object.keys(PLAN_FORMATS).join(', ')})`);
    const t0 = performance.now();
    const ex = await loadPlanExecutor(o.dir, format, { maxRows: Math.max(o.promptLen, 64), maxSeqs: Math.max(16, maxB), maxModelLen, tuning: o.tuning?.kernels });
    const loadS = (performance.now() - t0) / 1000;
    o.log(`weft plan (${name}): loaded and uploaded in ${loadS.toFixed(1)} s, ${(ex.weightBytes / 1e9).toFixed(2)} GB of linear weights per step`);
    try {
      await ex.initCaches(numBlocks, blockSize);
      const dev = ex.device;
      const { timeGpu, byKernel } = planTimers(ex);
      const promptTable = Array.from({ length: promptBlocks }, (_, i) => i);
      const prompt = Array.from({ length: o.promptLen }, (_, i) => 3 + ((i * 7919) % 31997));
      const prefill = stepOf([prompt], [0], [promptTable], blockSize);
      await ex.step(prefill);
      ex.prepare(prefill);
      await warmGpu(ex, o.promptLen, 1, false);
      const pf: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t = performance.now();
        await ex.step(prefill);
        pf.push(performance.now() - t);
      }
      const prefillMs = median(pf);
      ex.prepare(prefill);
      const prefillKernelUs = await byKernel(o.promptLen, 1, 2);
      const prefillDispatches = ex.tags(o.promptLen, 1).length;
      o.log(`  prefill ${o.promptLen} tokens: ${prefillMs.toFixed(2)} ms (${((o.promptLen / prefillMs) * 1000).toFixed(0)} tok/s); by kernel (µs): ${JSON.stringify(prefillKernelUs)}`);
      for (const b of o.batches) {
        const tables = Array.from({ length: b }, (_, s) => Array.from({ length: seqBlocks }, (_, i) => promptBlocks + s * seqBlocks + i));
        const prompts = Array.from({ length: b }, (_, s) => Array.from({ length: 8 }, (_, i) => 3 + ((i * 104729 + s * 7919) % 31997)));
        const first = await ex.step(stepOf(prompts, prompts.map(() => 0), tables, blockSize));
        let toks = Array.from(first.greedy!);
        const each: number[] = [];
        const starts: number[] = [];
        const decode = async (n: number) => {
          each.length = 0;
          starts.length = 0;
          for (let t = 0; t < n; t++) {
            const t1 = performance.now();
            const r = await ex.step(stepOf(toks.map((x) => [x]), toks.map(() => 8 + t), tables, blockSize));
            toks = Array.from(r.greedy!);
            starts.push(t1);
            each.push(performance.now() - t1);
          }
        };
        await decode(3);
        toks = Array.from(first.greedy!);
        ex.prepare(stepOf(toks.map((x) => [x]), toks.map(() => 8), tables, blockSize));
        await warmGpu(ex, b, b);
        const t = performance.now();
        await decode(o.decodeTokens);
        const stepMs = (performance.now() - t) / o.decodeTokens;
        const stepMedian = median(each);
        const stepMax = Math.max(...each);
        const maxAt = each.indexOf(stepMax);
        await gcLog.settle();
        const maxGc = gcLog.within(starts[maxAt]!, starts[maxAt]! + stepMax).reduce((a, e) => a + e.ms, 0);
        const gcInDecode = gcLog.summary(t, t + stepMs * o.decodeTokens);
        ex.prepare(stepOf(toks.map((x) => [x]), toks.map(() => 8), tables, blockSize));
        const gpuMs = await timeGpu(b, b);
        const encs: number[] = [];
        let dispatches = 0;
        for (let r = 0; r < 10; r++) {
          const t1 = performance.now();
          const enc = dev.createCommandEncoder();
          dispatches = ex.encode(enc, b, b);
          enc.finish();
          encs.push(performance.now() - t1);
        }
        const row: PlanBenchRow = {
          engine: `weft webgpu plan ${name} weights${o.tuning ? ` (${o.tuning.label})` : ''}`,
          dtype: name,
          batch: b,
          prefill_tok_s: +((o.promptLen / prefillMs) * 1000).toFixed(1),
          decode_tok_s: +((b / stepMs) * 1000).toFixed(2),
          decode_tok_s_median: +((b / stepMedian) * 1000).toFixed(2),
          step_ms_median: +stepMedian.toFixed(3),
          step_ms_max: +stepMax.toFixed(3),
          step_max_index: maxAt,
          step_max_gc_ms: +maxGc.toFixed(3),
          gc_in_decode: gcInDecode,
          dispatches_per_step: dispatches,
          step_ms: +stepMs.toFixed(3),
          gpu_step_ms: +gpuMs.toFixed(3),
          encode_ms: +median(encs).toFixed(3),
          host_overhead_ms: +(stepMs - gpuMs).toFixed(3),
          bandwidth_fraction: +(ex.weightBytes / (gpuMs / 1000) / o.bandwidth).toFixed(4),
          weight_gb: +(ex.weightBytes / 1e9).toFixed(3),
          kernel_us: await byKernel(b, b, 10),
          prefill_kernel_us: prefillKernelUs,
          prefill_dispatches: prefillDispatches,
          load_s: +loadS.toFixed(1),
        };
        rows.push(row);
        o.log(JSON.stringify(row));
      }
    } finally {
      ex.dispose();
    }
  }
  gcLog.stop();
  return rows;
}

export interface PlanCheckRow {
  fixture: string;
  file: string;
  line: string;
  pass: boolean;
}

/** The Llama fixtures through the plan on the WebGPU executor against tfjs (cpu) and Hugging Face; every weight format the fixtures have files for. */
const LLAMA_CHECKS: [string, string, WeightFormat][] = [
  ['llama-tiny', 'expected.json', PLAN_FORMATS.fp32!],
  ['llama-bf16', 'expected.json', { ...PLAN_FORMATS.fp32!, dtype: 'bfloat16' }],
  ['llama-tiny', 'expected-q8_0.json', { ...PLAN_FORMATS.fp32!, quantization: 'q8_0' }],
  ['llama-tiny', 'expected-q4_0.json', { ...PLAN_FORMATS.fp32!, quantization: 'q4_0' }],
  ['llama-mqa-tied-llama3', 'expected.json', PLAN_FORMATS.fp32!],
  ['mistral-swa-tiny', 'expected.json', PLAN_FORMATS.fp32!],
];

/** `runs` (fixture, expected file, format) through the plan on WebGPU against tfjs and HF; `createModel`: another family's rank (default Llama). */
export async function checkPlan(
  fixturesDir: string,
  log: (m: string) => void,
  runs = LLAMA_CHECKS,
  createModel: Parameters<typeof webgpuFixtureCheck>[2] = (d, s) => registration.createModel(d, s),
): Promise<PlanCheckRow[]> {
  await initBackend({ prefer: 'webgpu' });
  await initBackend({ prefer: 'cpu' });
  const rows: PlanCheckRow[] = [];
  for (const [fixture, file, format] of runs) {
    const { failures, line } = (await webgpuFixtureCheck(`${fixturesDir}/${fixture}`, { file, format, hf: WEBGPU_PARITY_BOUNDS.fixture, tfjs: WEBGPU_PARITY_BOUNDS.tfjs }, createModel))!;
    log(`${line}${failures.length ? ` FAIL: ${failures.join('; ')}` : ' ok'}`);
    rows.push({ fixture, file, line, pass: failures.length === 0 });
  }
  return rows;
}
