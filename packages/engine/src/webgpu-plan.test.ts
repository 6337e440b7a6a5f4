/**
 * The engine on the device plan's WebGPU executor (`backend: 'webgpu'`): greedy tokens equal
 * Hugging Face's greedy path and the wasm backend's; a request alone = in a batch of 4 of different
 * lengths = chunk-prefilled under a tiny token budget = split over several executor steps = served
 * from the prefix cache; a seeded sampled request with returned logits (sampled on the host from the
 * step's logits) and seeded requests over every sampling parameter (sampled on the device: only ids
 * and logprobs come back; penalties from the history kept there; logit bias, min tokens) equal wasm;
 * `logits-all` runs on the tfjs path and still matches the fixture. Runs on whatever adapter Dawn
 * finds (Mesa's OpenGL in CI).
 */
import { fileURLToPath } from 'node:url';
import { compareLogits, loadFixtureCases } from '@weft/layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prompts } from '../test-support/batching-cases.js';
import { LLM, type GenerateOutput } from './llm.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const GEN = { maxTokens: 4, ignoreEos: true } as const;
const LIMITS = { blockSize: 4, maxModelLen: 64, maxNumSeqs: 8, maxNumBatchedTokens: 64, timeoutMs: 60_000 } as const;

describe.each([
  ['llama-tiny', {}],
  ['llama-mqa-tied-llama3', { tp: 2 }],
  ['deepseek-v3-tiny', { dtype: 'bfloat16' }],
] as const)('%s %j on the WebGPU plan', (name, layout) => {
  // bf16 weights: the fp32 fixture is not the reference (wasm on the same bf16 weights is).
  const exact = !('dtype' in layout);
  const dir = fixtureDir(name);
  const cases = loadFixtureCases(dir);
  let gpu: LLM;
  let wasm: LLM;
  let ps: number[][];
  const alone: GenerateOutput[] = [];

  beforeAll(async () => {
    [gpu, wasm] = await Promise.all([LLM.load(dir, { ...LIMITS, ...layout, backend: 'webgpu' }), LLM.load(dir, { ...LIMITS, ...layout, backend: 'wasm', devicePlan: false })]);
    // Four prompts of 5, 9, 13 and 23 tokens.
    ps = [1, 3, 5, 7].map((i) => prompts(gpu.vocabSize)[i]!);
    await gpu.resetScheduler({ enablePrefixCaching: false });
    for (const p of ps) alone.push((await gpu.generate([p], GEN))[0]!);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([gpu?.close(), wasm?.close()]);
  });

  it('runs on the plan and greedy tokens equal Hugging Face and wasm', async () => {
    expect(gpu.stepPath).toBe('plan (webgpu)');
    for (const c of cases) {
      // Every fixture case's greedy margin is above greedyMismatches' 2e-3: the path must match exactly.
      expect(c.greedy_min_margin).toBeGreaterThanOrEqual(2e-3);
      const params = { maxTokens: c.greedy.length, ignoreEos: true };
      const [g] = await gpu.generate([c.input_ids], params);
      const [w] = await wasm.generate([c.input_ids], params);
      if (exact) expect(g!.tokenIds, 'HF greedy').toEqual(c.greedy);
      expect(g!.tokenIds, 'wasm').toEqual(w!.tokenIds);
    }
    const outs = await wasm.generate(ps, GEN);
    outs.forEach((o, i) => expect(alone[i]!.tokenIds, `prompt ${i} vs wasm`).toEqual(o.tokenIds));
  });

  it('alone = in a batch of 4 = chunked prefill = prefix cache', async () => {
    await gpu.resetScheduler({ enablePrefixCaching: false });
    const batch = await gpu.generate(ps, GEN);
    batch.forEach((o, i) => expect(o.tokenIds, `batched prompt ${i}`).toEqual(alone[i]!.tokenIds));

    await gpu.resetScheduler({ enablePrefixCaching: false, maxNumBatchedTokens: 5 });
    const chunked = await gpu.generate([ps[3]!, ps[2]!], GEN);
    expect(chunked[0]!.tokenIds, 'chunked 23').toEqual(alone[3]!.tokenIds);
    expect(chunked[1]!.tokenIds, 'chunked 13').toEqual(alone[2]!.tokenIds);

    // Limits raised past what the executor was sized for (64 rows): 8 prompts of 88 tokens in one
    // scheduler step run as several executor steps, a long prompt split in order (Llama only: slow on GL).
    if (name === 'llama-tiny') {
      await gpu.resetScheduler({ enablePrefixCaching: false, maxNumBatchedTokens: 2048 });
      const all = prompts(gpu.vocabSize);
      const eight = await gpu.generate(all, GEN);
      [1, 3, 5, 7].forEach((i, k) => expect(eight[i]!.tokenIds, `prompt ${i} of 8`).toEqual(alone[k]!.tokenIds));
    }

    await gpu.resetScheduler({ enablePrefixCaching: true });
    await gpu.generate([ps[3]!], GEN);
    const hits = gpu.stats().prefixCacheHits;
    const [again] = await gpu.generate([ps[3]!], GEN);
    expect(gpu.stats().prefixCacheHits - hits, 'prompt tokens served from the cache').toBe(20);
    expect(again!.tokenIds, 'cached prompt').toEqual(alone[3]!.tokenIds);
    const both = await gpu.generate([ps[3]!, ps[3]!], GEN);
    both.forEach((o) => expect(o.tokenIds, 'cached prompt, batched').toEqual(alone[3]!.tokenIds));
    expect(gpu.stats()).toMatchObject({ kvBlocksUsed: 0, running: 0, waiting: 0 });
  });

  it('seeded sampling, logprobs and returned logits (host sampler on the step logits) equal wasm', async () => {
    await gpu.resetScheduler({ enablePrefixCaching: false });
    const sampled = { maxTokens: 6, ignoreEos: true, temperature: 0.9, topP: 0.95, seed: 1234, logprobs: 2, returnLogits: true };
    // With a greedy request beside it: one step mixes device-argmax and host-sampled rows.
    const [g, gg] = await gpu.generate([ps[2]!, ps[0]!], [sampled, GEN]);
    const [w] = await wasm.generate([ps[2]!], sampled);
    expect(g!.tokenIds).toEqual(w!.tokenIds);
    expect(gg!.tokenIds).toEqual(alone[0]!.tokenIds);
    g!.logprobs!.forEach((lp, t) => expect(lp.logprob).toBeCloseTo(w!.logprobs![t]!.logprob, 3));
    g!.logits!.forEach((row, t) => {
      const { maxAbs } = compareLogits([row], w!.logits![t]!);
      expect(maxAbs, `logits of step ${t}`).toBeLessThan(1e-3);
    });
  });

  it('seeded sampling on the device sampler (every parameter, penalties, logprobs) and the host fallbacks beside it equal wasm', async () => {
    await gpu.resetScheduler({ enablePrefixCaching: false });
    const base = { maxTokens: 6, ignoreEos: true } as const;
    const mixes = [
      { temperature: 0.9, topP: 0.95, seed: 1234, logprobs: 2 },
      { temperature: 1.1, topK: 20, seed: 7 },
      { temperature: 0.8, minP: 0.05, topK: 40, topP: 0.9, seed: 99, logprobs: 5 },
      { temperature: 1.3, seed: 3 },
      { temperature: 0.7, repetitionPenalty: 1.5, presencePenalty: 0.6, frequencyPenalty: 0.4, seed: 42, logprobs: 1 },
      { temperature: 0, repetitionPenalty: 1.8, frequencyPenalty: 1 },
      // Strong enough to move tiny random models' flat logits: the prompt's history must reach the device.
      { temperature: 0.5, repetitionPenalty: 8, seed: 11, logprobs: 3 },
      { temperature: 0, repetitionPenalty: 8, presencePenalty: 2 },
      // The logits processors on the device (bias; min tokens masking stop tokens), and one the device leaves
      // to the host (more logit additions than it holds), in the same steps.
      { temperature: 0.9, logitBias: { 5: 4, 17: -2 }, repetitionPenalty: 1.4, seed: 8, logprobs: 1 },
      { temperature: 0.8, minTokens: 4, stopTokenIds: [3, 9], topK: 30, seed: 21 },
      { temperature: 0.9, logitBias: Object.fromEntries(Array.from({ length: 130 }, (_, t) => [t, (t % 7) / 3])), seed: 4 },
      { temperature: 1, topK: 1, seed: 5, logprobs: 0 },
    ].map((m) => ({ ...base, ...m }));
    const prompts = mixes.map((_, i) => ps[i % ps.length]!);
    // All at once with a plain greedy request: one step mixes argmax, device-sampled and nothing else.
    const got = await gpu.generate([...prompts, ps[0]!], [...mixes, GEN]);
    expect(got[mixes.length]!.tokenIds).toEqual(alone[0]!.tokenIds);
    for (const [i, m] of mixes.entries()) {
      const [w] = await wasm.generate([prompts[i]!], m);
      const g = got[i]!;
      expect(g.tokenIds, `${JSON.stringify(m)} vs wasm`).toEqual(w!.tokenIds);
      expect(g.logprobs === undefined, 'logprobs returned').toBe(w!.logprobs === undefined);
      g.logprobs?.forEach((lp, t) => {
        const want = w!.logprobs![t]!;
        expect(lp.logprob).toBeCloseTo(want.logprob, 3);
        expect(lp.top.map((x) => x.tokenId), `top ids at ${t}`).toEqual(want.top.map((x) => x.tokenId));
        lp.top.forEach((x, j) => expect(x.logprob).toBeCloseTo(want.top[j]!.logprob, 3));
      });
    }
    // More penalised sequences at once than the executor (sized for maxNumSeqs 8) keeps histories for:
    // those without a slot are sampled on the host, and every one still equals wasm.
    if (name === 'llama-tiny') {
      await gpu.resetScheduler({ enablePrefixCaching: false, maxNumSeqs: 12 });
      const pen = Array.from({ length: 12 }, (_, i) => ({ ...base, temperature: 0.6, repetitionPenalty: 4, presencePenalty: 1, seed: 100 + i }));
      const many = await gpu.generate(pen.map((_, i) => ps[i % ps.length]!), pen);
      for (const [i, m] of pen.entries()) expect(many[i]!.tokenIds, `penalised ${i} of 12`).toEqual((await wasm.generate([ps[i % ps.length]!], m))[0]!.tokenIds);
      await gpu.resetScheduler({ enablePrefixCaching: false, maxNumSeqs: LIMITS.maxNumSeqs });
    }
  });

  it('logits-all runs on the tfjs path and matches the fixture', async () => {
    const c = cases[0]!;
    const got = await gpu.logits(c.input_ids);
    const { maxAbs, relL2 } = compareLogits(got, exact ? c.logits : (await wasm.logits(c.input_ids)).flatMap((r) => Array.from(r)));
    expect(maxAbs).toBeLessThanOrEqual(1e-3);
    expect(relL2).toBeLessThanOrEqual(1e-4);
    // The plan keeps serving generate after that.
    const [o] = await gpu.generate([ps[1]!], GEN);
    expect(o!.tokenIds).toEqual(alone[1]!.tokenIds);
  });
});
