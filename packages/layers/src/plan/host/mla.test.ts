/**
 * The host MLA ops on their own: headMatmul against tfjs's batched matmul (the
 * absorption DeepseekMLA runs), copyHeads (strided and repeating one head),
 * roundInput against the a8 kernel's own rounding of a linear's input.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { planKernels } from '@weft/cpu-kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinearWeight } from '../../linear/linear-weight.js';
import { defaultWeightLoader } from '../../parameter.js';
import { GgmlLinearMethod, UnquantizedLinearMethod } from '../../quantization/linear-method.js';
import { useCpuQuantKernels } from '../../quantization/cpu-quant-kernels.js';
import { randomHost } from '../../test-entries/random.js';
import { PlanBuilder, view, whole } from '../builder.js';
import type { PlanAct } from '../ops.js';
import { copyHeadsHost, headMatmulHost, headMatricesHost, roundInputHost } from './mla.js';

const T = 5;
const kernels = planKernels();

function buffers(...acts: [PlanAct, Float32Array][]): (a: PlanAct) => Float32Array {
  const m = new Map(acts);
  return (a) => m.get(a)!;
}

describe(`headMatmul (${kernels.info.isa})`, () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  });

  it('equals the per-head batched matmul, reading and writing strided heads, other columns untouched', () => {
    const [H, k, n, xStride, outStride] = [3, 8, 6, 11, 9];
    const b = new PlanBuilder();
    const x = b.act('q', 2 + H * xStride);
    const out = b.act('query', 1 + H * outStride + 4);
    const xData = randomHost([T, x.width], 1).data as Float32Array;
    const w = randomHost([H, k, n], 2).data as Float32Array;
    const outData = new Float32Array(T * out.width).fill(-3);
    const bufs = buffers([x, xData], [out, outData]);
    const weight = { name: 'W_UK', heads: H, k, n, data: () => w };
    const op = { kind: 'headMatmul' as const, x: view(x, 2, (H - 1) * xStride + k), xStride, out: view(out, 1, (H - 1) * outStride + n), outStride, weight };
    headMatmulHost(op, T, bufs, headMatricesHost(w, H, k, n, weight.name), kernels);
    const want = tf.tidy(() => {
      // [T, H, k] gathered from the strided columns → [H, T, k] × [H, k, n] → [T, H, n]
      const xs = tf.stack(Array.from({ length: H }, (_, h) => tf.slice(tf.tensor2d(xData, [T, x.width]), [0, 2 + h * xStride], [T, k])));
      return tf.transpose(tf.matMul(xs, tf.tensor3d(w, [H, k, n])), [1, 0, 2]).dataSync() as Float32Array;
    });
    let err = 0;
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < out.width; c++) {
        const h = Math.floor((c - 1) / outStride);
        const j = c - 1 - h * outStride;
        const v = outData[t * out.width + c]!;
        if (c >= 1 && h < H && j < n) err = Math.max(err, Math.abs(v - want[(t * H + h) * n + j]!));
        else expect(v, `column ${c}`).toBe(-3);
      }
    }
    expect(err).toBeLessThan(1e-5);
  });

  it('names the weight when the heads do not fit the view', () => {
    const b = new PlanBuilder();
    const x = b.act('q', 20);
    const w = new Float32Array(2 * 8 * 4);
    const op = { kind: 'headMatmul' as const, x: whole(x), xStride: 16, out: whole(b.act('o', 8)), outStride: 4, weight: { name: 'W_UV', heads: 2, k: 8, n: 4, data: () => w } };
    expect(() => headMatmulHost(op, 1, buffers([x, new Float32Array(20)]), headMatricesHost(w, 2, 8, 4, 'W_UV'), kernels)).toThrow(/headMatmul W_UV x: 2 heads of 8 columns every 16 do not fit the view of q \(20 columns\)/);
  });
});

describe('copyHeads', () => {
  it('moves strided heads and repeats one head with xStride 0', () => {
    const b = new PlanBuilder();
    const src = b.act('src', 12);
    const dst = b.act('dst', 14);
    const s = Float32Array.from({ length: T * 12 }, (_, i) => i);
    const d = new Float32Array(T * 14).fill(-1);
    const bufs = buffers([src, s], [dst, d]);
    copyHeadsHost({ kind: 'copyHeads', x: view(src, 1, 10), xStride: 4, out: view(dst, 2, 11), outStride: 4, heads: 3, width: 2 }, T, bufs);
    for (let t = 0; t < T; t++) {
      const v = (c: number) => c + t * 12;
      expect(Array.from(d.subarray(t * 14, t * 14 + 14))).toEqual([-1, -1, v(1), v(2), -1, -1, v(5), v(6), -1, -1, v(9), v(10), -1, -1]);
    }
    const rep = new Float32Array(T * 14).fill(-1);
    copyHeadsHost({ kind: 'copyHeads', x: view(src, 8, 3), xStride: 0, out: whole(dst), outStride: 5, heads: 3, width: 3 }, T, buffers([src, s], [dst, rep]));
    for (let t = 0; t < T; t++) {
      const row = [8, 9, 10].map((c) => c + t * 12);
      expect(Array.from(rep.subarray(t * 14, t * 14 + 14))).toEqual([...row, -1, -1, ...row, -1, -1, ...row, -1]);
    }
  });
});

describe('roundInput', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
    useCpuQuantKernels(true);
  });
  afterAll(() => void useCpuQuantKernels(false));

  const weightOf = (format: 'fp32' | 'bf16' | 'q8_0' | 'q4_0', k: number) => {
    const w = new LinearWeight('kv_b_proj.weight', 16, k, defaultWeightLoader);
    if (format !== 'fp32') w.useMethod(format === 'bf16' ? new UnquantizedLinearMethod('bfloat16') : new GgmlLinearMethod(format));
    return w;
  };

  it.each(['q8_0', 'q4_0'] as const)('%s: the view is rounded as the registered a8 kernel rounds the linear input, other columns kept', (format) => {
    const k = 64;
    const w = weightOf(format, k);
    const b = new PlanBuilder();
    const act = b.act('kv_a', k + 16);
    const data = randomHost([T, k + 16], 7, 3).data as Float32Array;
    const before = data.slice();
    roundInputHost({ kind: 'roundInput', x: view(act, 0, k), weight: w }, T, buffers([act, data]));
    const want = tf.tidy(() => w.roundedInput(tf.slice(tf.tensor2d(before, [T, k + 16]), [0, 0], [T, k]))!.dataSync() as Float32Array);
    let changed = 0;
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < k + 16; c++) {
        const v = data[t * (k + 16) + c]!;
        if (c < k) {
          expect(v).toBe(want[t * k + c]);
          if (v !== before[t * (k + 16) + c]) changed++;
        } else expect(v).toBe(before[t * (k + 16) + c]);
      }
    }
    expect(changed, 'rounding changed the latent').toBeGreaterThan(T * k * 0.5);
  });

  it.each(['fp32', 'bf16'] as const)('%s: nothing changes (weight-only kernels)', (format) => {
    const w = weightOf(format, 32);
    const b = new PlanBuilder();
    const act = b.act('kv_a', 32);
    const data = randomHost([T, 32], 9, 3).data as Float32Array;
    const before = data.slice();
    roundInputHost({ kind: 'roundInput', x: whole(act), weight: w }, T, buffers([act, data]));
    expect(data).toEqual(before);
  });
});
