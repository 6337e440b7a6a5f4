/**
 * The WebGPU device sampler (layers' wgsl-sampling.ts through `RowSampler`) against the host sampler
 * (`sampleToken`) on the same logits rows: every parameter mix, many seeds, flat, peaked and tied rows, a
 * 32000 and a small vocabulary, batches mixing skipped (greedy) and sampled rows, logit bias and min-tokens
 * masking, penalties from a history kept on the device across two steps. Same token ids; logprobs within 1e-5. Runs on whatever adapter Dawn
 * finds (Mesa's OpenGL in CI).
 */
import { initBackend } from '@weft/core';
import { DEVICE_MAX_BIAS, requestDevice, RowSampler, type RowSampling } from '@weft/layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceSamplable, fromRowSampled, rowSampling } from './device-sampling.js';
import { sampleToken, type Sampled, type TokenHistory } from './sampler.js';
import { resolveSamplingParams, type SamplingParams, type SamplingParamsInit } from './sampling-params.js';

let device: GPUDevice;
beforeAll(async () => {
  await initBackend({ prefer: 'webgpu' });
  device = await requestDevice('device sampler test');
}, 60_000);
afterAll(() => device?.destroy());

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const gauss = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

type Shape = 'flat' | 'peaked' | 'ties' | 'negative' | 'tail';
function logitsRow(V: number, shape: Shape, r: () => number): Float32Array {
  const x = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    const g = gauss(r);
    x[i] = shape === 'flat' ? 0.3 * g : shape === 'peaked' ? 2.5 * g : shape === 'ties' ? Math.round(g * 2) / 2 : shape === 'tail' ? -11.5 + 0.1 * g : -20 + 0.5 * g;
  }
  if (shape === 'peaked') for (let k = 0; k < 5; k++) x[Math.floor(r() * V)] = 12 + 2 * r();
  // One likely token over a long tail of weights near 1e-5 that holds a quarter of the mass.
  if (shape === 'tail') x[Math.floor(r() * V)] = 0;
  // A tie at the top: the lower id must win greedy and top-k's order.
  if (shape === 'ties') x[V - 3] = x[7] = 3;
  return x;
}

const mixes = (V: number): SamplingParamsInit[] => [
  { temperature: 1 },
  { temperature: 0.7, topK: 40 },
  { temperature: 1, topP: 0.9 },
  { temperature: 0.8, topK: 50, topP: 0.8 },
  { temperature: 1.2, minP: 0.05 },
  { temperature: 1, minP: 0.1, topP: 0.95 },
  { temperature: 0.9, minP: 0.02, topK: 20, topP: 0.7 },
  { temperature: 1, topK: 1 },
  { temperature: 1, topP: 1, topK: -1, logprobs: 3 },
  { temperature: 1e-6, logprobs: 5 },
  { temperature: 2e-5, topP: 0.9 },
  { temperature: 0.5, repetitionPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.4 },
  { temperature: 1.5, topK: 30, repetitionPenalty: 0.8, frequencyPenalty: -0.3, logprobs: 2 },
  { temperature: 0, repetitionPenalty: 2, logprobs: 1 },
  { temperature: 2, topK: 5, logprobs: 20 },
  { temperature: 0.6, topP: 0.3, bestOf: 2, n: 1 },
  // More candidates than the kernel sorts in workgroup memory (512): top-p by radix select after top-k.
  { temperature: 0.9, topK: 1000, topP: 0.8, logprobs: 1 },
  // The logits processors: a bias that moves the top, min tokens masking the tied top pair (while counter < 60).
  { temperature: 0.8, topK: 10, logitBias: { 5: 8, 11: -3, [V - 1]: 2.5 }, repetitionPenalty: 1.2, logprobs: 2 },
  { temperature: 0, logitBias: { 2: 6 }, minTokens: 60, maxTokens: 200, stopTokenIds: [7, V - 3, 2] },
  { temperature: 1, minP: 0.2, minTokens: 60, maxTokens: 200, stopTokenIds: [7, V - 3], logprobs: 4 },
];

function history(V: number, r: () => number): TokenHistory {
  const prompt = new Set<number>();
  for (let k = 0; k < 40; k++) prompt.add(Math.floor(r() * V));
  const output = new Map<number, number>();
  for (let k = 0; k < 25; k++) {
    const t = r() < 0.5 ? Math.floor(r() * 16) : Math.floor(r() * V);
    output.set(t, (output.get(t) ?? 0) + 1);
  }
  return { prompt, output };
}

function expectSame(got: Sampled, want: Sampled, what: string): void {
  expect(got.tokenId, what).toBe(want.tokenId);
  expect(got.logprob === undefined, `${what}: logprob returned`).toBe(want.logprob === undefined);
  if (!want.logprob) return;
  expect(Math.abs(got.logprob!.logprob - want.logprob.logprob), `${what}: logprob`).toBeLessThan(1e-5);
  expect(got.logprob!.top.map((t) => t.tokenId), `${what}: top ids`).toEqual(want.logprob.top.map((t) => t.tokenId));
  got.logprob!.top.forEach((t, j) => expect(Math.abs(t.logprob - want.logprob!.top[j]!.logprob), `${what}: top ${j}`).toBeLessThan(1e-5));
}

interface Row {
  x: Float32Array;
  p: SamplingParams;
  counter: number;
  hist: TokenHistory | null;
  what: string;
}

describe.each([
  [32000, 4],
  [50, 4],
  [1000, 3],
])('device sampler at V = %i', (V, batches) => {
  it('equals sampleToken: every mix, many seeds, mixed batches, penalties kept on the device', async () => {
    const sampler = new RowSampler(device, V, 64, 64);
    const r = rng(V);
    const shapes: Shape[] = ['flat', 'peaked', 'ties', 'negative'];
    let n = 0;
    try {
      for (let b = 0; b < batches; b++) {
        const rows: (Row | null)[] = [];
        for (let i = 0; i < 64; i++) {
          // Every eighth row greedy without logprobs: not the sampler's (the executor's argmax): skipped.
          if (i % 8 === 7) {
            rows.push(null);
            continue;
          }
          const all = mixes(V);
          const mix = all[(b * 64 + i) % all.length]!;
          const p = resolveSamplingParams({ ...mix, seed: Math.floor(r() * 2 ** 32) });
          expect(deviceSamplable(p)).toBe(true);
          const shape = shapes[(i + b) % shapes.length]!;
          const pen = p.repetitionPenalty !== 1 || p.presencePenalty !== 0 || p.frequencyPenalty !== 0;
          rows.push({ x: logitsRow(V, shape, r), p, counter: Math.floor(r() * 100), hist: pen ? history(V, r) : null, what: `V ${V} batch ${b} row ${i} ${shape} ${JSON.stringify(mix)}` });
        }
        // Two steps: the second reads the history the first left on the device (its token counted there).
        for (const step of [0, 1]) {
          const want = rows.map((row) => (row ? sampleToken(row.x, row.p, row.counter + step, row.hist) : null));
          const spec = rows.map((row, i): RowSampling | null => (row ? rowSampling(row.p, row.counter + step, V, row.hist ? i : null, step === 0 ? (row.hist ?? undefined) : undefined) : null));
          const got = await sampler.sample(rows.map((row) => row?.x ?? new Float32Array(V)), spec);
          rows.forEach((row, i) => {
            if (!row) return expect(got[i], `row ${i} skipped`).toBeNull();
            expectSame(fromRowSampled(got[i]!), want[i]!, `${row.what} step ${step}`);
            n++;
            const h = row.hist;
            if (h) (h.output as Map<number, number>).set(want[i]!.tokenId, (h.output.get(want[i]!.tokenId) ?? 0) + 1);
          });
        }
      }
    } finally {
      sampler.destroy();
    }
    expect(n).toBe(batches * 56 * 2);
  }, 600_000);
});

it('rows of 32000 drawn in id order (the draw most sensitive to summation), flat and long-tailed: 256 seeds equal sampleToken', async () => {
  const V = 32000;
  const sampler = new RowSampler(device, V, 64, 1);
  const r = rng(11);
  try {
    for (let b = 0; b < 4; b++) {
      // Long tails: tiny weights a draw often lands among, spaced closer than a coarse fixed point resolves.
      const xs = Array.from({ length: 64 }, () => logitsRow(V, b % 2 ? 'tail' : 'flat', r));
      const ps = xs.map((_, i) => resolveSamplingParams({ temperature: i % 2 || b % 2 ? 1 : 1.7, minP: i % 4 === 3 ? 0.3 : 0, seed: Math.floor(r() * 2 ** 32) }));
      const got = await sampler.sample(xs, ps.map((p) => rowSampling(p, 0, V, null)));
      xs.forEach((x, i) => expect(got[i]!.tokenId, `row ${i} of batch ${b}`).toBe(sampleToken(x, ps[i]!, 0).tokenId));
    }
  } finally {
    sampler.destroy();
  }
}, 600_000);

it('returned logits and more logit additions than the device holds stay on the host', () => {
  expect(deviceSamplable(resolveSamplingParams({ temperature: 1, returnLogits: true }))).toBe(false);
  const bias = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [i, 1]));
  expect(deviceSamplable(resolveSamplingParams({ temperature: 1, logitBias: bias(DEVICE_MAX_BIAS) }))).toBe(true);
  expect(deviceSamplable(resolveSamplingParams({ temperature: 1, logitBias: bias(DEVICE_MAX_BIAS - 1), minTokens: 2, stopTokenIds: [500, 501] }))).toBe(false);
  expect(deviceSamplable(resolveSamplingParams({ temperature: 1, minTokens: 2, stopTokenIds: [5] }))).toBe(true);
});
