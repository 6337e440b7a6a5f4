/**
 * A plan weight's storage, one shape for every holder (a linear's method, an
 * embedding's dtype): what an executor uploads once. fp32 data is read from
 * the parameter's tensor (`[k, n]` for a LinearWeight, `[n, k]` for an
 * embedding, as `transposed` says); packed formats are the host blocks the
 * CPU kernels read.
 */
import * as tf from '@tensorflow/tfjs-core';
import { WeftError } from '@weft/core';
import { EmbeddingWeight } from '../embedding-weight.js';
import { LinearWeight } from '../linear/linear-weight.js';
import { Parameter } from '../parameter.js';
import type { DevicePlan } from './builder.js';
import type { PackedWeight } from '../quantization/packed-weight.js';

export type MatrixStorage =
  | {
      readonly format: 'fp32';
      readonly n: number;
      readonly k: number;
      /** True: `data` is `[k, n]` (a LinearWeight's fp32 tensor); false: `[n, k]`. */
      readonly transposed: boolean;
      /** The fp32 values (out of the tensor, or prefetched: call once, at upload). */
      data(): Float32Array;
    }
  | { readonly format: PackedWeight['format']; readonly n: number; readonly k: number; readonly packed: PackedWeight };

/** The `[n, k]` matrix a linear op multiplies by, or an embedding op looks rows up in. */
export function matrixStorage(w: LinearWeight | EmbeddingWeight): MatrixStorage {
  const [n, k] = w.shape as [number, number];
  const packed = w.packed;
  if (packed) return { format: packed.format, n, k, packed };
  if (!(w instanceof LinearWeight) && !(w instanceof EmbeddingWeight)) throw new WeftError(`plan: ${String((w as { name: string }).name)} is not a matrix weight`);
  // a LinearWeight's fp32 tensor is `[k, n]`, unless it is held row-major for a host executor (holdRowMajor)
  const rowMajor = w instanceof LinearWeight && w.isRowMajor;
  return { format: 'fp32', n, k, transposed: w instanceof LinearWeight && !rowMajor, data: () => (rowMajor ? (w.held.dataSync() as Float32Array) : hostValues(w)) };
}

/** A vector parameter's fp32 values (norm weights, biases). */
export function vectorData(p: Parameter): Float32Array {
  return hostValues(p);
}

/** Values read ahead by `prefetchHostValues`, until its release. */
const prefetched = new WeakMap<Parameter, Float32Array>();

/**
 * An fp32 parameter's values as its `tensor` gives them (`[in, out]` for a LinearWeight): prefetched, or read
 * synchronously (every CPU backend can). A LinearWeight held row-major is transposed for the caller (not kept).
 */
export function hostValues(p: Parameter): Float32Array {
  const got = prefetched.get(p);
  if (got) return got;
  if (!(p instanceof LinearWeight && p.isRowMajor)) return p.tensor.dataSync() as Float32Array;
  const t = tf.transpose(p.held);
  try {
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
}

/**
 * Reads every fp32 parameter the plan's ops name (its matrices, vectors, and what a `HeadMatrices.source`
 * holds) with the asynchronous API, so that `hostValues` answers synchronously at upload: a tensor on the
 * webgpu backend cannot be read synchronously in Node (tfjs's readSync needs an OffscreenCanvas). Returns the
 * release of those copies (call it once the weights are uploaded).
 */
export async function prefetchHostValues(plan: DevicePlan): Promise<() => void> {
  const params = new Set<Parameter>();
  const seen = new Set<unknown>();
  const walk = (x: unknown, depth: number): void => {
    if (x === null || typeof x !== 'object' || seen.has(x) || depth > 4) return;
    seen.add(x);
    if (x instanceof Parameter) {
      if (!(x as Parameter & { packed?: unknown }).packed) params.add(x);
      return;
    }
    for (const v of Array.isArray(x) ? x : Object.values(x)) walk(v, depth + 1);
  };
  for (const op of plan.ops) for (const [key, v] of Object.entries(op)) if (key !== 'group' && key !== 'rope') walk(v, 0);
  for (const p of params) if (!prefetched.has(p)) prefetched.set(p, (await p.tensor.data()) as Float32Array);
  return () => {
    for (const p of params) prefetched.delete(p);
  };
}
