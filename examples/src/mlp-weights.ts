/** The dense weights of the MLP example, identical on every rank (seeded). */
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '@weft/layers';

export const T = 6;
export const HIDDEN = 20;
export const INNER = 52; // 13 × 4: splits evenly over 4 ranks

function random(shape: number[], seed: number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 4294967296 - 0.5) * 0.5;
  }
  return { shape, dtype: 'float32', data };
}

export function denseWeights() {
  return { w1: random([INNER, HIDDEN], 1), b1: random([INNER], 2), w2: random([HIDDEN, INNER], 3), b2: random([HIDDEN], 4) };
}

export function input(): tf.Tensor2D {
  return tf.tensor2d(random([T, HIDDEN], 5).data, [T, HIDDEN]);
}
