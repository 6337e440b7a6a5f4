import { describe, expect, it } from 'vitest';
import { applyPenalties, argmax, sampleToken, samplingCandidates, topKIndices } from './sampler.js';
import { resolveSamplingParams, withEosTokenIds } from './sampling-params.js';

function randomRow(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s / 2 ** 32) * 8 - 4;
  });
}

/** Reference: the full sort the sampler avoids. */
function sortedIdx(row: Float32Array): number[] {
  return Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
}

describe('sampler', () => {
  it('topKIndices equals the head of a full sort (odd sizes, ties)', () => {
    for (const n of [1, 7, 131, 1001]) {
      const row = randomRow(n, n);
      row[n - 1] = row[0]!; // a tie
      for (const k of [1, 3, 64, n]) expect(topKIndices(row, k)).toEqual(sortedIdx(row).slice(0, k));
    }
  });

  it('greedy is argmax; penalties change it as vLLM does', () => {
    const row = Float32Array.from([1, 3, 2.9, -1]);
    expect(sampleToken(row, resolveSamplingParams({}), 0).tokenId).toBe(1);
    const hist = { prompt: new Set<number>(), output: new Map([[1, 2]]) };
    expect(sampleToken(row, resolveSamplingParams({ frequencyPenalty: 0.1 }), 0, hist).tokenId).toBe(2);
    expect(sampleToken(row, resolveSamplingParams({ repetitionPenalty: 1.1 }), 0, hist).tokenId).toBe(2);
    expect(sampleToken(row, resolveSamplingParams({ presencePenalty: 0.05 }), 0, hist).tokenId).toBe(1);
    const x = Float32Array.from([2, -2]);
    applyPenalties(x, resolveSamplingParams({ repetitionPenalty: 2 }), { prompt: new Set([0, 1]), output: new Map() });
    expect(Array.from(x)).toEqual([1, -4]);
    expect(argmax(row)).toBe(1);
  });

  it('top-k / top-p / min-p keep only the allowed tokens; frequencies follow the softmax', () => {
    const row = Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4)]); // probs 0.1 0.2 0.3 0.4
    const counts = (init: object) => {
      const c = [0, 0, 0, 0];
      const p = resolveSamplingParams({ temperature: 1, seed: 11, ...init });
      for (let i = 0; i < 4000; i++) c[sampleToken(row, p, i).tokenId]!++;
      return c.map((v) => v / 4000);
    };
    const all = counts({});
    [0.1, 0.2, 0.3, 0.4].forEach((p, i) => expect(Math.abs(all[i]! - p)).toBeLessThan(0.03));
    const k2 = counts({ topK: 2 });
    expect(k2[0]! + k2[1]!).toBe(0);
    expect(Math.abs(k2[3]! - 4 / 7)).toBeLessThan(0.03);
    const p07 = counts({ topP: 0.7 }); // 0.4 + 0.3 reaches 0.7
    expect(p07[0]! + p07[1]!).toBe(0);
    const m = counts({ minP: 0.6 }); // ≥ 0.24: tokens 2 and 3
    expect(m[0]! + m[1]!).toBe(0);
  });

  it('candidates equal a full sort in vLLM v1 order (min-p → top-k → top-p, top-p over what is left), flat and peaked rows', () => {
    /** Reference: sort everything min-p keeps, cut by top-k, then by top-p over the renormalised rest. */
    const reference = (x: Float32Array, p: ReturnType<typeof resolveSamplingParams>) => {
      const max = Math.max(...x);
      const floor = p.minP > 0 ? max + Math.log(p.minP) * p.temperature : -Infinity;
      let ids = sortedIdx(x).filter((i) => x[i]! >= floor);
      if (p.topK > 0) ids = ids.slice(0, p.topK);
      const w = ids.map((i) => Math.exp((x[i]! - max) / p.temperature));
      const sum = w.reduce((a, b) => a + b, 0);
      let acc = 0;
      const cut = w.findIndex((v) => (acc += v) / sum >= p.topP);
      return p.topP < 1 && cut >= 0 ? ids.slice(0, cut + 1) : ids;
    };
    let cases = 0;
    for (const temperature of [0.7, 1, 4]) {
      for (const [topK, topP, minP] of [[0, 0.9, 0], [0, 0.5, 0], [0, 0.95, 0.02], [40, 0.9, 0], [200, 0.8, 0.01], [0, 1, 0.1], [300, 1, 0]] as const) {
        const x = randomRow(1000, cases + 7);
        const p = resolveSamplingParams({ temperature, topK, topP, minP, seed: 5 });
        const ref = reference(x, p);
        const got = samplingCandidates(x, p).ids;
        // Without top-k, an unfiltered or min-p set comes in vocabulary order: compare as sets then.
        expect(topK === 0 && topP === 1 ? [...got].sort((a, b) => a - b) : got).toEqual(topK === 0 && topP === 1 ? [...ref].sort((a, b) => a - b) : ref);
        cases++;
      }
    }
    // A flat row at top-p 0.9 needs far more than the first 64 candidates (the heap's first try).
    const flat = resolveSamplingParams({ temperature: 4, topP: 0.9 });
    expect(samplingCandidates(randomRow(1000, 7), flat).ids.length).toBeGreaterThan(256);
  });

  it('a seeded draw depends only on (seed, token index)', () => {
    const row = randomRow(500, 3);
    const p = resolveSamplingParams({ temperature: 0.8, topP: 0.9, seed: 1234 });
    const a = Array.from({ length: 20 }, (_, i) => sampleToken(row, p, i).tokenId);
    const b = Array.from({ length: 20 }, (_, i) => sampleToken(new Float32Array(row), p, i).tokenId);
    expect(a).toEqual(b);
    expect(new Set(a).size).toBeGreaterThan(1);
  });

  it('logprobs: the sampled token and the top ones, log-softmax of the raw row', () => {
    const row = Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4)]);
    const r = sampleToken(row, resolveSamplingParams({ logprobs: 2 }), 0);
    expect(r.tokenId).toBe(3);
    expect(r.logprob!.logprob).toBeCloseTo(Math.log(0.4), 6);
    expect(r.logprob!.top.map((t) => t.tokenId)).toEqual([3, 2]);
    expect(r.logprob!.top[1]!.logprob).toBeCloseTo(Math.log(0.3), 6);
    expect(sampleToken(row, resolveSamplingParams({ logprobs: 0 }), 0).logprob!.top).toEqual([]);
  });

  it('logitBias moves greedy and sampled picks; minTokens masks stop and EOS ids until that many tokens', () => {
    const row = Float32Array.from([1, 3, 2.9, -1]);
    expect(sampleToken(row, resolveSamplingParams({ logitBias: { 2: 0.2 } }), 0).tokenId).toBe(2);
    const sampled = resolveSamplingParams({ temperature: 1, seed: 3, logitBias: { 3: 50 } });
    for (let t = 0; t < 20; t++) expect(sampleToken(row, sampled, t).tokenId).toBe(3);
    const p = withEosTokenIds(resolveSamplingParams({ minTokens: 2, stopTokenIds: [2] }), [1]);
    expect([0, 1, 2].map((t) => sampleToken(row, p, t).tokenId)).toEqual([0, 0, 1]);
    // The row itself is left alone; logprobs stay the model's own (vLLM's raw logprobs).
    expect(row).toEqual(Float32Array.from([1, 3, 2.9, -1]));
    const lp = sampleToken(row, { ...p, logprobs: 0 }, 0).logprob!;
    expect(lp.logprob).toBeCloseTo(1 - Math.log(Math.exp(1) + Math.exp(3) + Math.exp(2.9) + Math.exp(-1)), 5);
  });
});
