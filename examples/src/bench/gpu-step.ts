/**
 * bench:gpu's measurement of weft's own WebGPU step (`WebGpuLlamaStep`, no tfjs): prefill of one
 * long prompt, greedy decode at each batch (each step read back = what an engine loop pays, and
 * chained on the device = the GPU's pace), µs per step by kernel, host overhead, dispatches per
 * step and the fraction of the weight-bandwidth bound. Called from gpu.ts in the same run as
 * transformers.
 */
import { Checkpoint, initBackend, loadModelConfig, type LlamaConfig } from '@weft/core';
import { WebGpuLlamaStep, type WeightDtype } from '@weft/layers';
import { median } from './stats.js';

export interface StepBenchOptions {
  dir: string;
  dtypes: WeightDtype[];
  batches: number[];
  promptLen: number;
  decodeTokens: number;
  /** Bytes/s of the GPU's memory, for the bound. */
  bandwidth: number;
  log: (m: string) => void;
}

export interface StepBenchRow {
  engine: string;
  dtype: string;
  batch: number;
  prefill_tok_s: number | null;
  decode_tok_s: number;
  /** Same decode with the sampled token fed back on the device (no read-back wait between steps). */
  decode_chained_tok_s: number;
  dispatches_per_step: number;
  /** ms per decode step: read back every step; chained; GPU alone (10 steps in one submit). */
  step_ms: number;
  chained_step_ms: number;
  gpu_step_ms: number;
  /** Host-side recording of one step's command buffer (ms). */
  encode_ms: number;
  /** decode step time above the GPU's own time (ms): encoding, submit, map/read-back latency. */
  host_overhead_ms: number;
  /** Weight bytes per step ÷ GPU step time ÷ bandwidth (batch-1 bound). */
  bandwidth_fraction: number;
  /** µs per step of each kernel class when run alone (10 steps' worth in one pass). */
  kernel_us: Record<string, number>;
  /** The same for the prefill step (promptLen rows, tiled GEMM), µs. */
  prefill_kernel_us: Record<string, number>;
  prefill_dispatches: number;
  load_s: number;
}


export async function benchStep(o: StepBenchOptions): Promise<StepBenchRow[]> {
  await initBackend({ prefer: 'webgpu' });
  const config = loadModelConfig(o.dir) as LlamaConfig;
  const rows: StepBenchRow[] = [];
  const maxB = Math.max(...o.batches);
  const blockSize = 16;
  const promptBlocks = Math.ceil((o.promptLen + 1) / blockSize);
  const seqBlocks = Math.ceil((8 + o.decodeTokens + 12) / blockSize);
  const numBlocks = promptBlocks + maxB * seqBlocks + 4;
  for (const dtype of o.dtypes) {
    const t0 = performance.now();
    const ck = Checkpoint.open(o.dir);
    let step: WebGpuLlamaStep;
    try {
      step = await WebGpuLlamaStep.create({ config, weights: ck, dtype, numBlocks, maxRows: Math.max(o.promptLen, 64), maxSeqs: Math.max(16, maxB), maxModelLen: Math.max(o.promptLen + 16, 128) });
    } finally {
      ck.close();
    }
    const loadS = (performance.now() - t0) / 1000;
    o.log(`weft step (${dtype}): uploaded in ${loadS.toFixed(1)} s, ${(step.weightBytes / 1e9).toFixed(2)} GB of weights per step`);
    try {
      // Prefill: one prompt of promptLen tokens in one step.
      const promptTable = Array.from({ length: promptBlocks }, (_, i) => i);
      const prompt = Array.from({ length: o.promptLen }, (_, i) => 3 + ((i * 7919) % (config.vocabSize - 3)));
      await step.prefill([{ tokens: prompt, start: 0, blockTable: promptTable }]);
      const pf: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t = performance.now();
        await step.prefill([{ tokens: prompt, start: 0, blockTable: promptTable }]);
        pf.push(performance.now() - t);
      }
      const prefillMs = median(pf);
      const dev = step.device;
      const timeGpu = async (rowsN: number, seqsN: number, only?: (tag: string) => boolean, reps = 10) => {
        const runs: number[] = [];
        for (let r = 0; r < 3; r++) {
          const enc = dev.createCommandEncoder();
          for (let i = 0; i < reps; i++) step.encode(enc, rowsN, seqsN, only);
          const cb = enc.finish();
          await dev.queue.onSubmittedWorkDone();
          const t1 = performance.now();
          dev.queue.submit([cb]);
          await dev.queue.onSubmittedWorkDone();
          runs.push((performance.now() - t1) / reps);
        }
        return median(runs);
      };
      const byKernel = async (rowsN: number, seqsN: number, reps: number) => {
        const out: Record<string, number> = {};
        for (const tag of [...new Set(step.plan(rowsN, seqsN).map((d) => d.tag))]) out[tag] = +((await timeGpu(rowsN, seqsN, (x) => x === tag, reps)) * 1000).toFixed(1);
        return out;
      };
      step.writeInputs([{ tokens: prompt, start: 0, blockTable: promptTable }]);
      const prefillKernelUs = await byKernel(o.promptLen, 1, 2);
      const prefillDispatches = step.plan(o.promptLen, 1).length;
      o.log(`  prefill by kernel (µs): ${JSON.stringify(prefillKernelUs)}`);
      o.log(`  prefill ${o.promptLen} tokens: ${prefillMs.toFixed(2)} ms (${((o.promptLen / prefillMs) * 1000).toFixed(0)} tok/s)`);
      for (const b of o.batches) {
        const tables = Array.from({ length: b }, (_, s) => Array.from({ length: seqBlocks }, (_, i) => promptBlocks + s * seqBlocks + i));
        const prompts = Array.from({ length: b }, (_, s) => Array.from({ length: 8 }, (_, i) => 3 + ((i * 104729 + s * 7919) % (config.vocabSize - 3))));
        const first = await step.prefill(prompts.map((p, s) => ({ tokens: p, start: 0, blockTable: tables[s]! })));
        // Warm-up (pipelines for this row count), then read-back-every-step decode.
        let toks = Array.from(first.tokens);
        const decodeSync = async (n: number) => {
          for (let t = 0; t < n; t++) {
            const r = await step.decode(toks.map((tok, s) => ({ token: tok, position: 8 + t, blockTable: tables[s]! })));
            toks = Array.from(r.tokens);
          }
        };
        await decodeSync(3);
        toks = Array.from(first.tokens);
        let t = performance.now();
        await decodeSync(o.decodeTokens);
        const stepMs = (performance.now() - t) / o.decodeTokens;
        await step.decodeChained(first.tokens.length ? Array.from(first.tokens, (tok, s) => ({ token: tok, position: 8, blockTable: tables[s]! })) : [], 3);
        t = performance.now();
        await step.decodeChained(Array.from(first.tokens, (tok, s) => ({ token: tok, position: 8, blockTable: tables[s]! })), o.decodeTokens);
        const chainedMs = (performance.now() - t) / o.decodeTokens;
        // GPU time: 10 steps' dispatches in one pass each, one submit; and each kernel class alone.
        step.writeInputs(toks.map((tok, s) => ({ tokens: [tok], start: 8, blockTable: tables[s]! })));
        const gpuMs = await timeGpu(b, b);
        const encs: number[] = [];
        let dispatches = 0;
        for (let r = 0; r < 10; r++) {
          const t1 = performance.now();
          const enc = dev.createCommandEncoder();
          dispatches = step.encode(enc, b, b);
          enc.finish();
          encs.push(performance.now() - t1);
        }
        const kernelUs = await byKernel(b, b, 10);
        const row: StepBenchRow = {
          engine: `weft webgpu step ${dtype === 'float32' ? 'fp32' : 'bf16'} weights`,
          dtype,
          batch: b,
          prefill_tok_s: +((o.promptLen / prefillMs) * 1000).toFixed(1),
          decode_tok_s: +((b / stepMs) * 1000).toFixed(2),
          decode_chained_tok_s: +((b / chainedMs) * 1000).toFixed(2),
          dispatches_per_step: dispatches,
          step_ms: +stepMs.toFixed(3),
          chained_step_ms: +chainedMs.toFixed(3),
          gpu_step_ms: +gpuMs.toFixed(3),
          encode_ms: +median(encs).toFixed(3),
          host_overhead_ms: +(stepMs - gpuMs).toFixed(3),
          bandwidth_fraction: +(step.weightBytes / (gpuMs / 1000) / o.bandwidth).toFixed(4),
          kernel_us: kernelUs,
          prefill_kernel_us: prefillKernelUs,
          prefill_dispatches: prefillDispatches,
          load_s: +loadS.toFixed(1),
        };
        rows.push(row);
        o.log(JSON.stringify(row));
      }
    } finally {
      step.destroy();
    }
  }
  return rows;
}

export interface StepCheckRow {
  fixture: string;
  dtype: WeightDtype;
  what: string;
  maxAbs: number;
  relL2: number;
  pass: boolean;
}

/**
 * The step against the Hugging Face fixtures (Llama ones): the last row of each case after one
 * prefill of all cases, then every position through a chunked prefill and batched decode over
 * scattered KV blocks. Judge: max |Δ| ≤ 1e-3, relative L2 ≤ 1e-4 (bf16 weights on the bf16
 * fixture are exact, so the same bound).
 */
export async function checkStep(fixturesDir: string, log: (m: string) => void): Promise<StepCheckRow[]> {
  const { compareLogits, loadFixtureCases } = await import('@weft/layers');
  await initBackend({ prefer: 'webgpu' });
  const rows: StepCheckRow[] = [];
  const runs: [string, WeightDtype][] = [
    ['llama-tiny', 'float32'],
    ['llama-bf16', 'float32'],
    ['llama-bf16', 'bfloat16'],
    ['llama-mqa-tied-llama3', 'float32'],
  ];
  for (const [name, dtype] of runs) {
    const dir = `${fixturesDir}/${name}`;
    const cases = loadFixtureCases(dir);
    const V = cases[0]!.logits_shape[1];
    const ck = Checkpoint.open(dir);
    const step = await WebGpuLlamaStep.create({ config: loadModelConfig(dir) as LlamaConfig, weights: ck, dtype, numBlocks: 24, maxRows: 64, maxSeqs: 8, maxModelLen: 64 });
    ck.close();
    const table = (s: number) => Array.from({ length: 4 }, (_, b) => (7 * (s * 4 + b) + 5) % 24);
    const row = (c: (typeof cases)[number], p: number) => c.logits.slice(p * V, (p + 1) * V);
    const judge = (what: string, got: ArrayLike<number>[], want: number[]) => {
      const { maxAbs, relL2 } = compareLogits(got, want);
      const r = { fixture: name, dtype, what, maxAbs, relL2, pass: maxAbs <= 1e-3 && relL2 <= 1e-4 };
      rows.push(r);
      log(`step ${name} (${dtype}) ${what}: max|Δ| ${maxAbs.toExponential(2)} relL2 ${relL2.toExponential(2)} ${r.pass ? 'ok' : 'FAIL'}`);
    };
    try {
      const r = await step.prefill(cases.map((c, s) => ({ tokens: c.input_ids, start: 0, blockTable: table(s) })), { logits: true });
      cases.forEach((c, s) => judge(`case ${s} prefill, last row`, [r.logits!.subarray(s * V, (s + 1) * V)], row(c, c.input_ids.length - 1)));
      const got: Float32Array[][] = cases.map(() => []);
      const r1 = await step.prefill(cases.map((c, s) => ({ tokens: c.input_ids.slice(0, 3), start: 0, blockTable: table(s) })), { logits: true });
      cases.forEach((_, s) => got[s]!.push(r1.logits!.slice(s * V, (s + 1) * V)));
      const longest = Math.max(...cases.map((c) => c.input_ids.length));
      for (let p = 3; p < longest; p++) {
        const live = cases.map((c, s) => ({ c, s })).filter(({ c }) => p < c.input_ids.length);
        const d = await step.decode(live.map(({ c, s }) => ({ token: c.input_ids[p]!, position: p, blockTable: table(s) })), { logits: true });
        live.forEach(({ s }, i) => got[s]!.push(d.logits!.slice(i * V, (i + 1) * V)));
      }
      cases.forEach((c, s) => judge(`case ${s} chunked prefill + batched decode, positions 2..${c.input_ids.length - 1}`, got[s]!, Array.from({ length: c.input_ids.length - 2 }, (_, i) => row(c, i + 2)).flat()));
    } finally {
      step.destroy();
    }
  }
  return rows;
}
