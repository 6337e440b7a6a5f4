/**
 * Per-layer, per-rank KV cache: for each sequence, every key and value so far,
 * `[ctx, numKvHeads, headDim]` and `[ctx, numKvHeads, vHeadDim]`.
 *
 * TF.js tensors are immutable, so appending concatenates into new tensors and
 * frees the old ones. That copies O(ctx) per step, the same order as reading
 * the cache for attention. The stored tensors are `tf.keep`-ed, so a step can
 * run inside `tf.tidy` without the cache losing them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '@weft/core';

interface Entry {
  k: tf.Tensor3D;
  v: tf.Tensor3D;
}

export interface KVCacheDims {
  numKvHeads: number;
  headDim: number;
  vHeadDim: number;
}

export class KVCache {
  private readonly entries = new Map<number, Entry>();
  private fixedDims: KVCacheDims | null;

  /** Without dims, the first append fixes them; every later append must match. */
  constructor(numKvHeads?: number, headDim?: number, vHeadDim?: number) {
    this.fixedDims = numKvHeads !== undefined && headDim !== undefined ? { numKvHeads, headDim, vHeadDim: vHeadDim ?? headDim } : null;
  }

  /** Heads and head sizes of what this cache holds; null until known. */
  get dims(): KVCacheDims | null {
    return this.fixedDims;
  }

  /** Tokens cached for `seqId` (0 when none). */
  length(seqId: number): number {
    return this.entries.get(seqId)?.k.shape[0] ?? 0;
  }

  has(seqId: number): boolean {
    return this.entries.has(seqId);
  }

  seqIds(): number[] {
    return [...this.entries.keys()];
  }

  /** The cached K and V of `seqId`, still owned by the cache. */
  get(seqId: number): [tf.Tensor3D, tf.Tensor3D] | undefined {
    const e = this.entries.get(seqId);
    return e ? [e.k, e.v] : undefined;
  }

  /**
   * Append `k [n, Hk, headDim]`, `v [n, Hk, vHeadDim]` to `seqId` and return
   * the full K, V. The cache owns them: they stay valid until the next append,
   * `free` or `clear`. Do not dispose them.
   */
  append(seqId: number, k: tf.Tensor3D, v: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] {
    if (k.rank !== 3 || v.rank !== 3 || k.shape[0] !== v.shape[0] || k.shape[1] !== v.shape[1]) {
      throw new ConfigError(`kv cache: k ${JSON.stringify(k.shape)} and v ${JSON.stringify(v.shape)} must be [n, heads, ·] with equal n and heads`);
    }
    const dims = (this.fixedDims ??= { numKvHeads: k.shape[1], headDim: k.shape[2], vHeadDim: v.shape[2] });
    this.checkShape('k', k, dims.numKvHeads, dims.headDim);
    this.checkShape('v', v, dims.numKvHeads, dims.vHeadDim);
    const prev = this.entries.get(seqId);
    // clone shares the data but gives the cache its own handle, so the caller may dispose k and v.
    const fullK = tf.keep(prev ? (tf.concat([prev.k, k], 0) as tf.Tensor3D) : tf.clone(k));
    const fullV = tf.keep(prev ? (tf.concat([prev.v, v], 0) as tf.Tensor3D) : tf.clone(v));
    if (prev) {
      prev.k.dispose();
      prev.v.dispose();
    }
    this.entries.set(seqId, { k: fullK, v: fullV });
    return [fullK, fullV];
  }

  /** Drop a finished sequence. */
  free(seqId: number): void {
    const e = this.entries.get(seqId);
    if (!e) return;
    e.k.dispose();
    e.v.dispose();
    this.entries.delete(seqId);
  }

  clear(): void {
    for (const id of [...this.entries.keys()]) this.free(id);
  }

  /** Bytes held by cached tensors. */
  bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.k.size * bytesPerElement(e.k.dtype) + e.v.size * bytesPerElement(e.v.dtype);
    return n;
  }

  dispose(): void {
    this.clear();
  }

  private checkShape(name: string, t: tf.Tensor, heads: number, dim: number): void {
    if (t.shape[1] !== heads || t.shape[2] !== dim) {
      throw new ConfigError(`kv cache: ${name} ${JSON.stringify(t.shape)} must be [n, ${heads}, ${dim}]`);
    }
  }
}

function bytesPerElement(dtype: tf.DataType): number {
  return dtype === 'complex64' ? 8 : dtype === 'bool' ? 1 : 4;
}
