/**
 * vLLM's prompt logprobs (what `echo` with `logprobs` and eval harnesses read): each prompt token's logprob given
 * the tokens before it, and the best tokens of each position, against Hugging Face's logits on the fixtures — at
 * tp 1, tp 2 × pp 2 and dp 2, with the LM head run a few rows at a time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFixtureCases, type FixtureCase } from '@weft/layers';
import { afterAll, describe, expect, it } from 'vitest';
import { LLM } from './llm.js';
import type { TokenLogprob } from './sampler.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

/** Hugging Face's log softmax of row `t` of a case's logits. */
function hfLogprobs(c: FixtureCase, t: number): Float64Array {
  const vocab = c.logits_shape[1];
  const row = c.logits.slice(t * vocab, (t + 1) * vocab);
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
  return Float64Array.from(row, (x) => x - lse);
}

/** Logits within the fixture bound (1e-3) move a logprob by at most twice that. */
const TOL = 2e-3;

function expectMatchesHf(got: (TokenLogprob | null)[], c: FixtureCase, top: number): void {
  expect(got.length).toBe(c.input_ids.length);
  expect(got[0]).toBeNull();
  for (let t = 1; t < c.input_ids.length; t++) {
    const ref = hfLogprobs(c, t - 1);
    const lp = got[t]!;
    expect(lp.tokenId).toBe(c.input_ids[t]);
    expect(Math.abs(lp.logprob - ref[c.input_ids[t]!]!), `position ${t}`).toBeLessThanOrEqual(TOL);
    expect(lp.top.length).toBe(top);
    const order = Array.from(ref.keys()).sort((a, b) => ref[b]! - ref[a]!);
    lp.top.forEach((e, k) => {
      expect(Math.abs(e.logprob - ref[e.tokenId]!), `position ${t} top ${k}`).toBeLessThanOrEqual(TOL);
      // The same token wherever Hugging Face's next best is further away than the error allows.
      if (ref[order[k]!]! - ref[order[k + 1]!]! > 2 * TOL) expect(e.tokenId, `position ${t} top ${k}`).toBe(order[k]);
    });
  }
}

describe('prompt logprobs (llama-tiny) match Hugging Face', () => {
  const dir = fixtureDir('llama-tiny');
  const cases = loadFixtureCases(dir);
  const open: LLM[] = [];
  afterAll(async () => {
    await Promise.all(open.map((l) => l.close()));
  });

  it.each([
    { tp: 1, pp: 1, dp: 1, chunkRows: 3 },
    { tp: 2, pp: 2, dp: 1, chunkRows: 5 },
    { tp: 1, pp: 1, dp: 2, chunkRows: 1000 },
  ])('tp=$tp pp=$pp dp=$dp, $chunkRows rows of logits at a time', async ({ tp, pp, dp, chunkRows }) => {
    const llm = await LLM.load(dir, { tp, pp, dp });
    open.push(llm);
    const got = await llm.promptLogprobs(cases.map((c) => c.input_ids), 3, chunkRows);
    cases.forEach((c, i) => expectMatchesHf(got[i]!, c, 3));
    // One prompt alone is what it is among the others (to float32 rounding: the batch's row count changes the
    // matmul's order); generation still runs after.
    const [alone] = await llm.promptLogprobs([cases[1]!.input_ids], 3, chunkRows);
    alone!.forEach((e, t) => {
      if (t === 0) return expect(e).toBeNull();
      expect(e!.top.map((x) => x.tokenId)).toEqual(got[1]![t]!.top.map((x) => x.tokenId));
      expect(Math.abs(e!.logprob - got[1]![t]!.logprob)).toBeLessThan(1e-5);
    });
    const [g] = await llm.generate([cases[0]!.input_ids], { maxTokens: 3, ignoreEos: true });
    expect(g!.tokenIds.length).toBe(3);
  });

  it('on a rank that runs the host plan (int8 weights, native kernels, Q8_0 activations): the a8 reference', async () => {
    const q8 = await LLM.load(dir, { quantization: 'int8' });
    open.push(q8);
    expect(q8.stepPath).toMatch(/^plan/);
    const a8 = JSON.parse(readFileSync(join(dir, 'expected-q8_0-a8.json'), 'utf8')).cases as FixtureCase[];
    const got = await q8.promptLogprobs(a8.map((c) => c.input_ids), 2);
    let worst = 0;
    a8.forEach((c, i) => {
      expect(got[i]![0]).toBeNull();
      for (let t = 1; t < c.input_ids.length; t++) worst = Math.max(worst, Math.abs(got[i]![t]!.logprob - hfLogprobs(c, t - 1)[c.input_ids[t]!]!));
    });
    // The a8 files' own noise: one activation rounding to the neighbouring quantum moves a logit by up to ~1e-2
    // (worst seen here 1.5e-3).
    expect(worst).toBeLessThan(1e-2);
  });

  it('a host-plan rank keeps no transposed copy of its fp32 weights after the full-sequence forward (int4, fp32 LM head)', async () => {
    const q4 = await LLM.load(dir, { quantization: 'int4' });
    open.push(q4);
    expect(q4.stepPath).toMatch(/^plan/);
    const gen = () => q4.generate([cases[0]!.input_ids], { maxTokens: 2, ignoreEos: true });
    await gen();
    const before = q4.tensorCounts.at(-1);
    await q4.promptLogprobs([cases[0]!.input_ids, cases[1]!.input_ids], 1);
    await gen();
    expect(q4.tensorCounts.at(-1), 'live tensors on the rank after a decode step').toBe(before);
  });

  it('top 0 lists no alternatives; a bad top or chunk size is refused by name', async () => {
    const llm = await LLM.load(dir);
    open.push(llm);
    const [lps] = await llm.promptLogprobs([cases[0]!.input_ids]);
    expect(lps!.slice(1).every((e) => e!.top.length === 0)).toBe(true);
    await expect(llm.promptLogprobs([[1, 2]], -1)).rejects.toThrow(/top must be an integer/);
    await expect(llm.promptLogprobs([[1, 2]], 1, 0)).rejects.toThrow(/chunkRows must be a positive integer/);
  });
});
