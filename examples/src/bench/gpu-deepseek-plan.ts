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
   * The last prompt row's logits from the whole prefill (the GEMMs, MLA prefill attention, 64-row expert
   * tiles) against the same row in a step of the last `tail` rows after a prefill of the others: max |Δ| and
   * the largest |logit|.
   */
  prefillVsDecode: { tail: number; maxAbs: number; maxLogit: number; sameArgmax: boolean }[];
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
    // The last prompt row's logits through the whole prefill, and through a prefill of the rows before the last
    // `tail` then a step of those `tail` rows: 64 (chunked GEMV, 8-row expert tiles, the MLA prefill kernel),
    // 16 (GEMV, 4-row tiles, the staged attention kernel), 1 (a decode step).
    const full = prompt(9);
    const whole = (await ex.step({ ...stepOf([full], [0], [table], blockSize), logitsRows: [true] })).logits!;
    const argmax = (x: Float32Array) => x.subarray(0, o.vocab).reduce((best, v, i, r) => (v > r[best]! ? i : best), 0);
    const prefillVsDecode: DeepseekProfile['prefillVsDecode'] = [];
    for (const tail of [64, 16, 1]) {
      const cut = full.length - tail;
      await ex.step(stepOf([full.slice(0, cut)], [0], [table], blockSize));
      const b = (await ex.step({ ...stepOf([full.slice(cut)], [cut], [table], blockSize), logitsRows: [true] })).logits!;
      let maxAbs = 0;
      let maxLogit = 0;
      for (let i = 0; i < o.vocab; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(whole[i]! - b[i]!));
        maxLogit = Math.max(maxLogit, Math.abs(whole[i]!));
      }
      prefillVsDecode.push({ tail, maxAbs: +maxAbs.toExponential(3), maxLogit: +maxLogit.toFixed(4), sameArgmax: argmax(whole) === argmax(b) });
    }
    o.log(`profile: the last row, whole prefill against a prefill then a step of the last rows ${JSON.stringify(prefillVsDecode)}`);
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
