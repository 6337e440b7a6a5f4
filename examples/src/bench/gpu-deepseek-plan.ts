/**
 * bench:gpu-deepseek's `--profile`: the DeepSeek checkpoint's rank plan on the WebGPU executor alone (loaded as
 * the engine loads a rank, bf16 weights), where the step's time goes: prefill of one prompt — the first step
 * of that shape (shader compiles, the bind groups) and warmed steps of other prompts —, the GPU's own time of a
 * step (10 in one submit) and µs per kernel tag at the prefill and at each decode batch, and the decode step
 * read back every step. Every moe op routes on the device, so a step is one command buffer.
 */
import { initBackend, type WeightFormat } from '@weft/core';
import { registration } from '@weft/deepseek';
import type { WebGpuPlanExecutor } from '@weft/layers';
import { loadPlanExecutor, planTimers, stepOf } from './gpu-plan.js';
import { median } from './stats.js';

export interface DeepseekProfile {
  loadS: number;
  prefill: { tokens: number; firstMs: number; warmMs: number; gpuMs: number; kernelUs: Record<string, number>; dispatches: number };
  /**
   * The last prompt row's logits from the whole prefill (MLA prefill attention, expert GEMM tiles, headMatmul
   * over 8-row chunks) against the same row run as a decode step after a prefill of the others (decode
   * attention, 1-row expert tiles): max |Δ| and the largest |logit|.
   */
  prefillVsDecode: { maxAbs: number; maxLogit: number; sameArgmax: boolean };
  decode: { batch: number; stepMs: number; gpuMs: number; kernelUs: Record<string, number>; dispatches: number }[];
}

export async function profileDeepseekPlan(dir: string, o: { promptLen: number; batches: number[]; decodeTokens: number; vocab: number; format: WeightFormat; log: (m: string) => void }): Promise<DeepseekProfile> {
  await initBackend({ prefer: 'webgpu' });
  await initBackend({ prefer: 'cpu' });
  const blockSize = 16;
  const maxB = Math.max(...o.batches);
  const promptBlocks = Math.ceil((o.promptLen + 1) / blockSize);
  const seqBlocks = Math.ceil((8 + o.decodeTokens + 12) / blockSize);
  const maxModelLen = Math.max(o.promptLen + 16, 128);
  const t0 = performance.now();
  const ex: WebGpuPlanExecutor = await loadPlanExecutor(dir, o.format, { maxRows: Math.max(o.promptLen, 64), maxSeqs: Math.max(16, maxB), maxModelLen }, (d, s) => registration.createModel(d, s, {}));
  const loadS = (performance.now() - t0) / 1000;
  o.log(`profile: executor loaded in ${loadS.toFixed(1)} s`);
  try {
    await ex.initCaches(promptBlocks + maxB * seqBlocks + 4, blockSize);
    const { timeGpu, byKernel } = planTimers(ex);
    const table = Array.from({ length: promptBlocks }, (_, i) => i);
    const prompt = (salt: number) => Array.from({ length: o.promptLen }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (o.vocab - 3)));
    let t = performance.now();
    await ex.step(stepOf([prompt(0)], [0], [table], blockSize));
    const firstMs = performance.now() - t;
    const warm: number[] = [];
    for (let r = 1; r <= 3; r++) {
      t = performance.now();
      await ex.step(stepOf([prompt(r)], [0], [table], blockSize));
      warm.push(performance.now() - t);
    }
    const prefill = { tokens: o.promptLen, firstMs: +firstMs.toFixed(2), warmMs: +median(warm).toFixed(2), gpuMs: +(await timeGpu(o.promptLen, 1, undefined, 2)).toFixed(3), kernelUs: await byKernel(o.promptLen, 1, 2), dispatches: ex.tags(o.promptLen, 1).length };
    o.log(`profile: prefill ${JSON.stringify(prefill)}`);
    const whole = { ...stepOf([prompt(9)], [0], [table], blockSize), logitsRows: [true] };
    const a = (await ex.step(whole)).logits!;
    const head = prompt(9).slice(0, -1);
    await ex.step(stepOf([head], [0], [table], blockSize));
    const b = (await ex.step({ ...stepOf([[prompt(9).at(-1)!]], [head.length], [table], blockSize), logitsRows: [true] })).logits!;
    let maxAbs = 0;
    let maxLogit = 0;
    const argmax = (x: Float32Array) => x.subarray(0, o.vocab).reduce((best, v, i, r) => (v > r[best]! ? i : best), 0);
    for (let i = 0; i < o.vocab; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
      maxLogit = Math.max(maxLogit, Math.abs(a[i]!));
    }
    const prefillVsDecode = { maxAbs: +maxAbs.toExponential(3), maxLogit: +maxLogit.toFixed(4), sameArgmax: argmax(a) === argmax(b) };
    o.log(`profile: prefill vs decode of the last row ${JSON.stringify(prefillVsDecode)}`);
    const decode: DeepseekProfile['decode'] = [];
    for (const b of o.batches) {
      const tables = Array.from({ length: b }, (_, s) => Array.from({ length: seqBlocks }, (_, i) => promptBlocks + s * seqBlocks + i));
      const prompts = Array.from({ length: b }, (_, s) => Array.from({ length: 8 }, (_, i) => 3 + ((i * 104729 + s * 7919) % (o.vocab - 3))));
      const first = await ex.step(stepOf(prompts, prompts.map(() => 0), tables, blockSize));
      let toks = Array.from(first.greedy!);
      const run = async (n: number) => {
        for (let i = 0; i < n; i++) toks = Array.from((await ex.step(stepOf(toks.map((x) => [x]), toks.map(() => 8 + i), tables, blockSize))).greedy!);
      };
      await run(3);
      toks = Array.from(first.greedy!);
      t = performance.now();
      await run(o.decodeTokens);
      const stepMs = (performance.now() - t) / o.decodeTokens;
      const row = { batch: b, stepMs: +stepMs.toFixed(3), gpuMs: +(await timeGpu(b, b)).toFixed(3), kernelUs: await byKernel(b, b, 10), dispatches: ex.tags(b, b).length };
      o.log(`profile: decode ${JSON.stringify(row)}`);
      decode.push(row);
    }
    return { loadS: +loadS.toFixed(1), prefill, prefillVsDecode, decode };
  } finally {
    ex.dispose();
  }
}
