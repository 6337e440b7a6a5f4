/**
 * A plan weight's storage, one shape for every holder (a linear's method, an
 * embedding's dtype): what an executor uploads once. fp32 data is read from
 * the parameter's tensor (`[k, n]` for a LinearWeight, `[n, k]` for an
 * embedding, as `transposed` says); packed formats are the host blocks the
 * CPU kernels read.
 */
import { WeftError } from '@weft/core';
import { EmbeddingWeight } from '../embedding-weight.js';
import { LinearWeight } from '../linear/linear-weight.js';
import type { Parameter } from '../parameter.js';
import type { PackedWeight } from '../quantization/packed-weight.js';

export type MatrixStorage =
  | {
      readonly format: 'fp32';
      readonly n: number;
      readonly k: number;
      /** True: `data` is `[k, n]` (a LinearWeight's fp32 tensor); false: `[n, k]`. */
      readonly transposed: boolean;
      /** The fp32 values (a copy out of the tensor: call once, at upload). */
      data(): Float32Array;
    }
  | { readonly format: PackedWeight['format']; readonly n: number; readonly k: number; readonly packed: PackedWeight };

/** The `[n, k]` matrix a linear op multiplies by, or an embedding op looks rows up in. */
export function matrixStorage(w: LinearWeight | EmbeddingWeight): MatrixStorage {
  const [n, k] = w.shape as [number, number];
  const packed = w.packed;
  if (packed) return { format: packed.format, n, k, packed };
  const transposed = w instanceof LinearWeight;
  if (!transposed && !(w instanceof EmbeddingWeight)) throw new WeftError(`plan: ${String((w as Parameter).name)} is not a matrix weight`);
  return { format: 'fp32', n, k, transposed, data: () => w.tensor.dataSync() as Float32Array };
}

/** A vector parameter's fp32 values (norm weights, biases). */
export function vectorData(p: Parameter): Float32Array {
  return p.tensor.dataSync() as Float32Array;
}
