/**
 * The engine on the device plan (PlanRunner): the same fixtures the tfjs path
 * matches, through the host executor on the CPU backends, at tp 1, tp 2 and
 * pp 2, every dense family, fp32 (`devicePlan: true`) and packed weights
 * ('auto'). Each test first checks that every rank runs the plan (a silent
 * fall-back to tfjs fails it), then the fixture's bound: logits of the
 * full-sequence forward and each cached decode step of `generate` (which the
 * plan runs) equal to it within 1e-4.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareLogits, parityBackends, type FixtureCase } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import { expectFixtureParity, FIXTURE_BOUND, type ParityBound } from './fixture-parity.js';
import { LLM, type LLMOptions } from './llm.js';
import { splitStep } from './plan-runner.js';
import type { StepSeq } from './protocol.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const casesOf = (name: string, file = 'expected.json') => (JSON.parse(readFileSync(join(fixtureDir(name), file), 'utf8')) as { cases: FixtureCase[] }).cases;
const A8_BOUND: ParityBound = { relL2: 1.5e-2 };

interface Case {
  name: string;
  /** Run on wasm in CI too (tensorflow runs every case not marked `full`; WEFT_FULL_MATRIX=1 runs every case on both). */
  wasm?: boolean;
  /**
   * WEFT_FULL_MATRIX=1 only: one rank of a family whose plan-fixtures test (in the family's package) runs the
   * same fixture and format through the host executor; the engine's side of tp 1 is the cases left in CI.
   */
  full?: boolean;
  fixture: string;
  file?: string;
  opts: LLMOptions;
  bound?: ParityBound;
}

const CASES: Case[] = [
  { name: 'llama fp32 tp1', fixture: 'llama-tiny', opts: { devicePlan: true } },
  { name: 'llama fp32 tp2', fixture: 'llama-tiny', opts: { devicePlan: true, tp: 2 } },
  { name: 'llama fp32 pp2', fixture: 'llama-tiny', opts: { devicePlan: true, pp: 2 } },
  { name: 'llama int8 tp2 (auto)', wasm: true, fixture: 'llama-tiny', file: 'expected-q8_0-a8.json', opts: { quantization: 'int8', tp: 2 }, bound: A8_BOUND },
  { name: 'llama int4 tp1 (auto)', full: true, fixture: 'llama-tiny', file: 'expected-q4_0-a8.json', opts: { quantization: 'int4' }, bound: A8_BOUND },
  { name: 'llama bf16 tp1 (auto)', full: true, fixture: 'llama-bf16', opts: { dtype: 'bfloat16' } },
  { name: 'llama3 rope, tied, MQA', full: true, fixture: 'llama-mqa-tied-llama3', opts: { devicePlan: true } },
  { name: 'mistral sliding window', full: true, fixture: 'mistral-swa-tiny', opts: { devicePlan: true } },
  { name: 'qwen2 bias, sliding window, tied', full: true, fixture: 'qwen2-swa-tied', opts: { devicePlan: true } },
  { name: 'qwen3 q/k norm', fixture: 'qwen3-tiny', opts: { devicePlan: true, tp: 2 } },
  { name: 'phi3 partial rotary', full: true, fixture: 'phi3-mqa-partial', opts: { devicePlan: true } },
  { name: 'gemma2 soft caps, norms, windows', wasm: true, fixture: 'gemma2-tiny', opts: { devicePlan: true } },
  { name: 'deepseek v3 MLA latent cache + MoE, int8 (auto)', wasm: true, fixture: 'deepseek-v3-tiny', file: 'expected-q8_0-a8.json', opts: { quantization: 'int8' }, bound: A8_BOUND },
  { name: 'deepseek v3 tp2 ep', fixture: 'deepseek-v3-tiny', opts: { devicePlan: true, tp: 2, enableExpertParallel: true } },
  { name: 'deepseek v3 full K/V cache', fixture: 'deepseek-v3-tiny', opts: { devicePlan: true, mlaKvCache: 'full' } },
  { name: 'deepseek v2-lite', full: true, fixture: 'deepseek-v2-lite-tiny', opts: { devicePlan: true } },
  { name: 'qwen3-moe tp2', fixture: 'qwen3-moe-tiny', opts: { devicePlan: true, tp: 2 } },
  { name: 'mixtral', full: true, fixture: 'mixtral-tiny', opts: { devicePlan: true } },
  { name: 'deepseek v3 dp2 tp2 ep4 (dummy batches)', fixture: 'deepseek-v3-tiny', opts: { devicePlan: true, dp: 2, tp: 2, enableExpertParallel: true } },
  { name: 'qwen3-moe dp2 ep2 pp2', fixture: 'qwen3-moe-tiny', opts: { devicePlan: true, dp: 2, pp: 2, enableExpertParallel: true } },
];

describe.each(parityBackends().map((b) => [b.backend, b] as const))('on %s', (_b, { backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    return;
  }
  const full = process.env['WEFT_FULL_MATRIX'] === '1';
  const cases = full ? CASES : CASES.filter((c) => !c.full && (backend !== 'wasm' || c.wasm));
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const llm = await LLM.load(fixtureDir(c.fixture), { ...c.opts, backend });
    try {
      expect(llm.stepPath).toBe('plan (host)');
      await expectFixtureParity(llm, casesOf(c.fixture, c.file), c.bound ?? FIXTURE_BOUND, 4);
    } finally {
      await llm.close();
    }
  });
});

// One request on two replicas whose experts span both: the idle replica runs dummy batches on every step
// (its own KV block), and the busy one's tokens and logits equal a single replica's.
it('dp 2 × ep: the idle replica steps with dummy batches, the busy one equals tp 1', async () => {
  const dir = fixtureDir('deepseek-v3-tiny');
  const prompt = casesOf('deepseek-v3-tiny')[0]!.input_ids;
  const gen = { maxTokens: 6, returnLogits: true, ignoreEos: true } as const;
  const one = await LLM.load(dir, { devicePlan: true, backend: 'tensorflow' });
  const want = await one.generate([prompt], gen).finally(() => one.close());
  const two = await LLM.load(dir, { devicePlan: true, backend: 'tensorflow', dp: 2, enableExpertParallel: true, trace: true });
  try {
    expect(two.stepPath).toBe('plan (host)');
    const got = await two.generate([prompt], gen);
    expect(got[0]!.tokenIds).toEqual(want[0]!.tokenIds);
    got[0]!.logits!.forEach((row, t) => expect(compareLogits([row], want[0]!.logits![t]!).maxAbs, `step ${t}`).toBeLessThan(1e-4));
    // The idle replica (one rank) ran a dummy batch beside each of the busy one's decode steps.
    expect(two.trace().traceEvents.filter((e) => e.name === 'dummy batch').length).toBeGreaterThanOrEqual(5);
  } finally {
    await two.close();
  }
});

it('splitStep cuts a step to an executor capacity: chunks in order, at most maxSeqs, only last pieces sample', () => {
  const seq = (seqId: number, n: number, contextLen: number, sample: boolean) =>
    ({ seqId, tokens: Array.from({ length: n }, (_, i) => 100 * seqId + i), contextLen, blockTable: [seqId], sample, tokenIndex: 0 }) as StepSeq;
  const batches = splitStep([seq(1, 1, 7, true), seq(2, 12, 3, true), seq(3, 1, 9, true), seq(4, 2, 0, false)], 5, 2);
  const view = batches.map((b) => b.map((s) => [s.seqId, s.tokens.length, s.contextLen, s.sample, s.tokens[0]]));
  expect(view).toEqual([
    [[1, 1, 7, true, 100], [2, 4, 3, false, 200]],
    [[2, 5, 7, false, 204]],
    [[2, 3, 12, true, 209], [3, 1, 9, true, 300]],
    [[4, 2, 0, false, 400]],
  ]);
  expect(splitStep([seq(1, 3, 0, true)], Infinity, Infinity)).toEqual([[seq(1, 3, 0, true)]]);
});
