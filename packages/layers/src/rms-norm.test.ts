import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { hostWeight } from './parameter.js';
import { RMSNorm } from './rms-norm.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648 - 0.5) * 4;
  });
}

/** HF LlamaRMSNorm in float64: weight · x / sqrt(mean(x²) + eps). */
function ref(x: Float32Array, w: Float32Array, T: number, H: number, eps: number): Float64Array {
  const out = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let j = 0; j < H; j++) ss += x[t * H + j]! ** 2;
    const r = 1 / Math.sqrt(ss / H + eps);
    for (let j = 0; j < H; j++) out[t * H + j] = w[j]! * x[t * H + j]! * r;
  }
  return out;
}

describe('RMSNorm', () => {
  const T = 5;
  const H = 37;
  const eps = 1e-5;
  const w = rand(H, 1);
  const norm = new RMSNorm('model.norm', H, eps);
  norm.weight.load(hostWeight('model.norm.weight', { shape: [H], dtype: 'float32', data: w }));

  it('exposes its weight under the module prefix', () => {
    expect(norm.parameters().map((p) => p.name)).toEqual(['model.norm.weight']);
    expect(norm.weight.shape).toEqual([H]);
  });

  it('matches the float64 formula', () => {
    const x = rand(T * H, 2);
    const y = tf.tidy(() => norm.forward(tf.tensor2d(x, [T, H])));
    const r = ref(x, w, T, H, eps);
    const got = y.dataSync();
    for (let i = 0; i < r.length; i++) expect(Math.abs(got[i]! - r[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(r[i]!)));
    y.dispose();
  });

  it('residual form returns (norm(x + residual), x + residual) and leaks nothing', () => {
    const x = rand(T * H, 3);
    const res = rand(T * H, 4);
    const xt = tf.tensor2d(x, [T, H]);
    const rt = tf.tensor2d(res, [T, H]);
    const before = tf.memory().numTensors;
    const [normed, sum] = norm.forwardResidual(xt, rt);
    expect(tf.memory().numTensors).toBe(before + 2);
    const s = Float32Array.from(x, (v, i) => v + res[i]!);
    expect(Array.from(sum.dataSync())).toEqual(Array.from(s));
    const r = ref(s, w, T, H, eps);
    const got = normed.dataSync();
    for (let i = 0; i < r.length; i++) expect(Math.abs(got[i]! - r[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(r[i]!)));
    tf.dispose([normed, sum, xt, rt]);
  });

  it('rejects a wrong hidden size', () => {
    const x = tf.zeros([2, H + 1]) as tf.Tensor2D;
    expect(() => norm.forward(x)).toThrow(/model\.norm/);
    x.dispose();
  });
});
