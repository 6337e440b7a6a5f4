import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomHost } from '../test-entries/random.js';
import { routingMethod, selectExperts, type RouterConfig } from './router.js';
import { referenceRoute } from './test-entries/reference.js';


/** Softmax of these logits is proportional to `p`. */
const softmaxLogits = (p: number[]) => p.map(Math.log);
/** Sigmoid of these logits is `p`. */
const sigmoidLogits = (p: number[]) => p.map((v) => Math.log(v / (1 - v)));

function route(logits: number[][], cfg: RouterConfig): { ids: number[][]; weights: number[][] } {
  const before = tf.memory().numTensors;
  const input = tf.tensor2d(logits);
  const { ids, weights } = selectExperts(input, cfg);
  const out = { ids: ids.arraySync() as number[][], weights: weights.arraySync() as number[][] };
  expect(ids.dtype).toBe('int32');
  expect(weights.dtype).toBe('float32');
  input.dispose();
  ids.dispose();
  weights.dispose();
  expect(tf.memory().numTensors, 'selectExperts leaks nothing').toBe(before);
  return out;
}

function expectWeights(got: number[][], want: number[][]): void {
  expect(got.length).toBe(want.length);
  got.forEach((row, t) => row.forEach((v, k) => expect(v, `weight [${t}, ${k}]`).toBeCloseTo(want[t]![k]!, 5)));
}

// The ranks compute on wasm; the tests' references on the cpu backend.
describe.each(['cpu', 'wasm'])('on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
  });

  describe('selectExperts: softmax, greedy (DeepSeek V2 greedy, Mixtral)', () => {
    const logits = [softmaxLogits([1, 2, 3, 4]), softmaxLogits([4, 1, 1, 4])];

    it('plain top-k of the softmax, ids in descending score, ties to the lowest index', () => {
      const r = route(logits, { topK: 2, scoring: 'softmax', renormalize: false });
      expect(r.ids).toEqual([[3, 2], [0, 3]]);
      expectWeights(r.weights, [[0.4, 0.3], [0.4, 0.4]]);
    });

    it('renormalise, then scale', () => {
      const r = route(logits, { topK: 2, scoring: 'softmax', renormalize: true, routedScalingFactor: 2 });
      expectWeights(r.weights, [[(4 / 7) * 2, (3 / 7) * 2], [1, 1]]);
    });

    it('scaling without renormalising (HF V2: always × routed_scaling_factor, never normalised)', () => {
      const r = route(logits, { topK: 2, scoring: 'softmax', renormalize: false, routedScalingFactor: 16 });
      expectWeights(r.weights, [[6.4, 4.8], [6.4, 6.4]]);
    });

    it("'greedy' ignores n_group", () => {
      const r = route([softmaxLogits([1, 8, 6, 6, 7, 2, 3, 5])], { topK: 3, scoring: 'softmax', renormalize: false, method: 'greedy', nGroup: 4, topkGroup: 1 });
      expect(r.ids).toEqual([[1, 4, 2]]);
    });
  });

  describe('selectExperts: softmax, group_limited_greedy (DeepSeek V2)', () => {
    // p / 38; groups of 2: maxima g0 8, g1 6, g2 7, g3 5.
    const p = [1, 8, 6, 6, 7, 2, 3, 5];
    const logits = [softmaxLogits(p)];

    it('keeps the topk_group groups with the best maximum, then top-k inside them', () => {
      const r = route(logits, { topK: 3, scoring: 'softmax', renormalize: false, nGroup: 4, topkGroup: 2 });
      expect(routingMethod({ nGroup: 4 })).toBe('group_limited_greedy');
      // Greedy would take 1, 4, 2; experts 2 and 3 are in group 1, which is dropped.
      expect(r.ids).toEqual([[1, 4, 5]]);
      expectWeights(r.weights, [[8 / 38, 7 / 38, 2 / 38]]);
    });

    it('masked experts score 0.0 (HF masked_fill): when top-k needs more than the kept groups hold, they come with weight 0', () => {
      const r = route(logits, { topK: 3, scoring: 'softmax', renormalize: false, nGroup: 4, topkGroup: 1, routedScalingFactor: 2 });
      expect(r.ids).toEqual([[1, 0, 2]]);
      expectWeights(r.weights, [[(8 / 38) * 2, (1 / 38) * 2, 0]]);
    });
  });

  describe('selectExperts: sigmoid + correction bias + groups (DeepSeek V3 noaux_tc)', () => {
    const p = [0.1, 0.9, 0.5, 0.6, 0.3, 0.35, 0.8, 0.05];
    const bias = [0, 0, 0.3, 0, 0, 0.2, -0.4, 0];
    // biased = [0.1, 0.9, 0.8, 0.6, 0.3, 0.55, 0.4, 0.05]; group top-2 sums 1.0, 1.4, 0.85, 0.45.

    it('the bias chooses (group top-2 sums, then top-k), the unbiased scores weigh; renormalise (+1e-20) and scale', () => {
      const b = tf.tensor1d(bias);
      const cfg: RouterConfig = { topK: 2, scoring: 'sigmoid', correctionBias: b, nGroup: 4, topkGroup: 2, renormalize: true, routedScalingFactor: 2.5 };
      expect(routingMethod(cfg)).toBe('noaux_tc');
      const r = route([sigmoidLogits(p)], cfg);
      // Without the bias, 1 (0.9) and 6 (0.8) would win.
      expect(r.ids).toEqual([[1, 2]]);
      expectWeights(r.weights, [[(0.9 / 1.4) * 2.5, (0.5 / 1.4) * 2.5]]);
      const plain = route([sigmoidLogits(p)], { ...cfg, renormalize: false, routedScalingFactor: 1 });
      expectWeights(plain.weights, [[0.9, 0.5]]);
      b.dispose();
    });

    it('masked experts score 0.0, so they beat kept experts whose biased score is negative (HF; vLLM masks to -inf)', () => {
      const b = tf.tensor1d([0.5, -0.5, -0.5, -0.5]);
      // biased = [1.1, -0.4, -0.3, -0.2]: group 0 (0.7) beats group 1 (-0.5).
      const r = route([sigmoidLogits([0.6, 0.1, 0.2, 0.3])], { topK: 2, scoring: 'sigmoid', correctionBias: b, nGroup: 2, topkGroup: 1, renormalize: false });
      expect(r.ids).toEqual([[0, 2]]);
      expectWeights(r.weights, [[0.6, 0.2]]);
      b.dispose();
    });

    it('noaux_tc without a bias scores groups by their top-2 (HF V3 with a zero bias buffer)', () => {
      // top-2 sums: g0 0.1+0.9 = 1.0, g1 1.1, g2 0.65, g3 0.85; the max would pick g0 and g3.
      const r = route([sigmoidLogits(p)], { topK: 2, scoring: 'sigmoid', method: 'noaux_tc', nGroup: 4, topkGroup: 2, renormalize: false });
      expect(r.ids).toEqual([[1, 3]]);
      expectWeights(r.weights, [[0.9, 0.6]]);
    });

    it('renormalising weights that underflowed to 0 gives 0, not NaN (the 1e-20)', () => {
      const r = route([[-200, -200, -200, -200]], { topK: 2, scoring: 'sigmoid', renormalize: true });
      expect(r.ids).toEqual([[0, 1]]);
      expect(r.weights).toEqual([[0, 0]]);
    });
  });

  describe('selectExperts against a loop-by-loop port of Hugging Face routing (random logits)', () => {
    const T = 24;
    const E = 16;
    const cases: (Omit<RouterConfig, 'correctionBias'> & { bias?: boolean })[] = [
      { topK: 2, scoring: 'softmax', renormalize: false },
      // Mixtral, Qwen3-MoE with norm_topk_prob: softmax, top-k, divided by the sum.
      { topK: 2, scoring: 'softmax', renormalize: true },
      { topK: 4, scoring: 'softmax', renormalize: true, routedScalingFactor: 1.5 },
      { topK: 3, scoring: 'softmax', renormalize: false, nGroup: 4, topkGroup: 2, routedScalingFactor: 16 },
      { topK: 4, scoring: 'sigmoid', renormalize: true, nGroup: 8, topkGroup: 3, routedScalingFactor: 2.5, bias: true },
      { topK: 6, scoring: 'sigmoid', renormalize: true, nGroup: 4, topkGroup: 1, bias: true },
      { topK: 2, scoring: 'sigmoid', renormalize: false, bias: true },
      { topK: 3, scoring: 'sigmoid', renormalize: true, method: 'noaux_tc', nGroup: 2, topkGroup: 1 },
    ];
    it.each(cases.map((c, i) => [i, c] as const))('case %i', (i, c) => {
      const logits = randomHost([T, E], 100 + i, 3).data;
      const biasHost = c.bias ? randomHost([E], 200 + i, 0.4).data : null;
      const bias = biasHost ? tf.tensor1d(biasHost) : null;
      const rows = Array.from({ length: T }, (_, t) => Array.from(logits.subarray(t * E, (t + 1) * E)));
      const got = route(rows, { ...c, correctionBias: bias });
      const want = referenceRoute(logits, T, E, { ...c, scale: c.routedScalingFactor, bias: biasHost });
      for (let t = 0; t < T; t++) {
        expect(got.ids[t], `token ${t}`).toEqual(Array.from(want.ids.subarray(t * c.topK, (t + 1) * c.topK)));
        got.weights[t]!.forEach((v, k) => expect(Math.abs(v - want.weights[t * c.topK + k]!)).toBeLessThan(1e-6));
      }
      bias?.dispose();
    });
  });

  it('selectExperts with no tokens gives empty results', () => {
    const x = tf.zeros([0, 8]) as tf.Tensor2D;
    const b = tf.zeros([8]) as tf.Tensor1D;
    const { ids, weights } = selectExperts(x, { topK: 2, scoring: 'sigmoid', correctionBias: b, nGroup: 4, topkGroup: 2, renormalize: true });
    expect(ids.shape).toEqual([0, 2]);
    expect(weights.shape).toEqual([0, 2]);
    for (const t of [x, b, ids, weights]) t.dispose();
  });

  describe('selectExperts: configuration errors name the sizes', () => {
    const logits = () => tf.zeros([2, 8]) as tf.Tensor2D;
    it.each([
      [{ topK: 9, scoring: 'softmax', renormalize: false }, /num_experts_per_tok=9.*n_routed_experts=8/],
      [{ topK: 2, scoring: 'softmax', renormalize: false, nGroup: 3 }, /n_routed_experts=8 is not divisible by n_group=3/],
      [{ topK: 2, scoring: 'softmax', renormalize: false, nGroup: 4, topkGroup: 5 }, /topk_group=5.*n_group=4/],
      [{ topK: 2, scoring: 'sigmoid', renormalize: false, method: 'noaux_tc', nGroup: 8, topkGroup: 2 }, /top-2 experts.*8\/8 = 1/],
    ] as [RouterConfig, RegExp][])('%j', (cfg, msg) => {
      const x = logits();
      expect(() => selectExperts(x, cfg)).toThrow(msg);
      x.dispose();
    });
  });
});
