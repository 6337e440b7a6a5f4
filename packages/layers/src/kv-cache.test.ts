import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { KVCache } from './kv-cache.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('KVCache', () => {
  it('appends per sequence, keeps only the latest tensors, survives an outer tidy', () => {
    const cache = new KVCache(2, 3, 4);
    const base = tf.memory().numTensors;
    tf.tidy(() => {
      cache.append(1, tf.ones([2, 2, 3]) as tf.Tensor3D, tf.ones([2, 2, 4]) as tf.Tensor3D);
      cache.append(2, tf.zeros([1, 2, 3]) as tf.Tensor3D, tf.zeros([1, 2, 4]) as tf.Tensor3D);
      const [k, v] = cache.append(1, tf.fill([1, 2, 3], 5) as tf.Tensor3D, tf.fill([1, 2, 4], 6) as tf.Tensor3D);
      expect(k.shape).toEqual([3, 2, 3]);
      expect(v.shape).toEqual([3, 2, 4]);
    });
    // Two sequences × (K, V), nothing else.
    expect(tf.memory().numTensors).toBe(base + 4);
    expect(cache.length(1)).toBe(3);
    expect(cache.length(2)).toBe(1);
    expect(cache.length(3)).toBe(0);
    const [k1] = cache.get(1)!;
    expect(Array.from(k1.dataSync())).toEqual([...Array(12).fill(1), ...Array(6).fill(5)]);
    expect(cache.bytes()).toBe(4 * (3 * 2 * 3 + 3 * 2 * 4 + 1 * 2 * 3 + 1 * 2 * 4));
    cache.free(1);
    expect(cache.seqIds()).toEqual([2]);
    expect(tf.memory().numTensors).toBe(base + 2);
    cache.clear();
    expect(cache.bytes()).toBe(0);
    expect(tf.memory().numTensors).toBe(base);
  });

  it('lets the caller dispose what it appended', () => {
    const cache = new KVCache(1, 2);
    const k = tf.tensor3d([1, 2], [1, 1, 2]);
    const v = tf.tensor3d([3, 4], [1, 1, 2]);
    cache.append(0, k, v);
    tf.dispose([k, v]);
    expect(Array.from(cache.get(0)![1].dataSync())).toEqual([3, 4]);
    cache.dispose();
  });

  it('checks shapes, learning them from the first append when not given', () => {
    const cache = new KVCache(2, 3);
    const k1 = tf.zeros([1, 1, 3]) as tf.Tensor3D;
    const k2 = tf.zeros([1, 2, 3]) as tf.Tensor3D;
    const v5 = tf.zeros([1, 2, 5]) as tf.Tensor3D;
    expect(() => cache.append(0, k1, k2)).toThrow(/equal n and heads/);
    expect(() => cache.append(0, k2, v5)).toThrow(/v \[1,2,5\] must be \[n, 2, 3\]/);
    const learning = new KVCache();
    expect(learning.dims).toBeNull();
    learning.append(0, k2, v5);
    expect(learning.dims).toEqual({ numKvHeads: 2, headDim: 3, vHeadDim: 5 });
    expect(() => learning.append(1, k2, k2)).toThrow(/must be \[n, 2, 5\]/);
    learning.dispose();
    tf.dispose([k1, k2, v5]);
  });
});
