/** Deterministic host tensors for tests: every rank builds the same dense weights from a seed. */
import type { HostTensor } from '../parameter.js';

export function randomHost(shape: number[], seed: number, scale = 1): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    // xorshift32 → (-1, 1)
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return { shape, dtype: 'float32', data };
}

export function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s % vocab;
  }
  return out;
}
