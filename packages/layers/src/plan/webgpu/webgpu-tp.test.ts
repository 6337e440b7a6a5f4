/**
 * The WebGPU executor at tp 2 on real worker threads, both ranks on this
 * machine's one adapter: an all-reduce and a gather of vocab-parallel logits
 * as plan boundaries, against the dense computation.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { runRanks } from '@weft/comm';
import { initBackend } from '@weft/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createPackedWeight } from '../../quantization/packed-weight.js';
import { randomHost } from '../../test-entries/random.js';
import type { TpCase } from './tp-rank.entry.js';

const entry = new URL('./tp-rank.entry.ts', import.meta.url);

beforeAll(async () => {
  await initBackend({ prefer: 'webgpu' });
  await tf.setBackend('cpu');
}, 60_000);

/** A seeded `[n, k]` weight as the ranks hold it (bf16-rounded when asked), `[n, k]` fp32. */
function weight(n: number, k: number, seed: number, bf16: boolean): tf.Tensor2D {
  const w = randomHost([n, k], seed, 0.3).data as Float32Array;
  if (!bf16) return tf.tensor2d(w, [n, k]);
  const p = createPackedWeight('bf16', n, k);
  p.storeRows(w, 0, n);
  return tf.transpose(tf.tensor2d(p.dequantizeTransposed(), [k, n]));
}

describe('WebGpuPlanExecutor at tp 2 (two ranks, one device)', () => {
  it.each([false, true])('column → row (all-reduce) → vocab-parallel head (gather to rank 0), bf16 %s', async (bf16) => {
    const c: TpCase = { k: 24, n1: 40, n2: 20, vocab: 36, bf16, steps: [3, 21] };
    const results = (await runRanks({ parallel: { tp: 2 }, entry, args: c, backend: 'webgpu' })) as ({ logits: number[][]; greedy: number[][] } | null)[];
    expect(results[1]).toBeNull();
    const got = results[0]!;
    c.steps.forEach((T, i) => {
      const want = tf.tidy(() => {
        const x = tf.tensor2d(randomHost([T, c.k], 100 + T).data as Float32Array, [T, c.k]);
        const z = tf.matMul(tf.matMul(x, weight(c.n1, c.k, 1, bf16), false, true), weight(c.n2, c.n1, 2, bf16), false, true);
        const s = tf.gather(z, [T - 1, 0]);
        return tf.matMul(s, weight(c.vocab, c.n2, 3, bf16), false, true).dataSync() as Float32Array;
      });
      const have = got.logits[i]!;
      expect(have.length).toBe(want.length);
      expect(Math.max(...have.map((v, j) => Math.abs(v - want[j]!)))).toBeLessThan(1e-4);
      [0, 1].forEach((s) => {
        const row = Array.from(want.subarray(s * c.vocab, (s + 1) * c.vocab));
        expect(got.greedy[i]![s]).toBe(row.indexOf(Math.max(...row)));
      });
    });
  });
});
