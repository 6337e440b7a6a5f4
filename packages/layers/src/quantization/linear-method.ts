/**
 * vLLM's `LinearMethodBase` (model_executor/layers/quantization/base_config.py):
 * how a linear weight is stored on a rank (`createWeights`), finished after
 * loading (`processWeightsAfterLoading`) and multiplied (`apply`). Layers
 * never branch on the format: they call their weight's method.
 *
 * - `UnquantizedLinearMethod('float32')`: an fp32 tfjs tensor (weft's default);
 * - `UnquantizedLinearMethod('bfloat16')`: bf16 bits in host memory;
 * - `GgmlLinearMethod('q8_0' | 'q4_0')`: llama.cpp's blocks in host memory.
 * Packed weights run a registered CPU kernel where the backend has one
 * (quant-kernels.ts) and otherwise are dequantized per op into an fp32
 * tensor for tfjs's matmul, which every backend has.
 */
import * as tf from '@tensorflow/tfjs-core';
import { roundTripActivationsQ8_0 } from '@weft/cpu-kernels';
import { linearOp } from '../kernels/index.js';
import { cpuQ4_0Layout } from './cpu-quant-kernels.js';
import { createPackedWeight, type PackedFormat, type PackedWeight } from './packed-weight.js';
import { quantKernelsFor } from './quant-kernels.js';

/** What a method sees of the weight it serves (a LinearWeight). */
export interface LinearWeightData {
  readonly name: string;
  /** [out, in] on this rank. */
  readonly shape: readonly number[];
  /** The fp32 tensor `[in, out]` (fp32 method only). */
  readonly tensor: tf.Tensor;
  /** The fp32 tensor `[out, in]` where it is held so (host-plan ranks): multiplied transposed, no `[in, out]` copy. */
  readonly rowMajorTensor?: tf.Tensor | null;
  /** The packed storage (other methods). */
  readonly packed: PackedWeight | null;
}

export type LinearMethodName = 'fp32' | PackedFormat;

export interface LinearMethodBase {
  readonly name: LinearMethodName;
  /** Storage for a `[n, k]` weight on this rank; null: the parameter's own fp32 tensor. */
  createWeights(n: number, k: number): PackedWeight | null;
  processWeightsAfterLoading(weight: LinearWeightData): void;
  /** `x [m, k]` → `x · Wᵀ (+ bias)` `[m, n]`. */
  apply(weight: LinearWeightData, x: tf.Tensor2D, bias?: tf.Tensor | null): tf.Tensor2D;
}

/** vLLM's `UnquantizedLinearMethod`: fp32 as a tfjs tensor, or bf16 kept as 16-bit host data. */
export class UnquantizedLinearMethod implements LinearMethodBase {
  readonly name: LinearMethodName;
  constructor(readonly dtype: 'float32' | 'bfloat16' = 'float32') {
    this.name = dtype === 'float32' ? 'fp32' : 'bf16';
  }

  createWeights(n: number, k: number): PackedWeight | null {
    return this.dtype === 'float32' ? null : createPackedWeight('bf16', n, k);
  }

  processWeightsAfterLoading(): void {}

  apply(weight: LinearWeightData, x: tf.Tensor2D, bias?: tf.Tensor | null): tf.Tensor2D {
    if (this.dtype !== 'float32') return applyPacked(weight, x, bias);
    const rowMajor = weight.rowMajorTensor;
    if (!rowMajor) return linearOp(x, weight.tensor as tf.Tensor2D, bias);
    // A host-plan rank's fallback forward (full-sequence logits, prompt logprobs): a kept transpose would double
    // these weights for the rest of the process.
    return tf.tidy(() => {
      const y = tf.matMul(x, rowMajor as tf.Tensor2D, false, true);
      return (bias ? tf.add(y, bias) : y) as tf.Tensor2D;
    });
  }
}

/** llama.cpp's Q8_0 / Q4_0 (the `int8` / `int4` options). */
export class GgmlLinearMethod implements LinearMethodBase {
  constructor(readonly name: 'q8_0' | 'q4_0') {}

  createWeights(n: number, k: number): PackedWeight {
    return createPackedWeight(this.name, n, k);
  }

  /**
   * vLLM's process_weights_after_loading: every row is in (a loader stores row ranges at any offset: TP slices,
   * fused shards), so Q4_0 can now take the layout the CPU kernels read fastest (tile16 where the addon has tile
   * kernels: one stream a tile, +17-25% decode GB/s at 2 threads; docs/benchmarks/cpu-kernels.md). Q8_0 stays in
   * rows (the same repack measured no gain).
   */
  processWeightsAfterLoading(weight: LinearWeightData): void {
    const w = weight.packed;
    if (w?.format === 'q4_0') w.repack(cpuQ4_0Layout());
  }

  apply(weight: LinearWeightData, x: tf.Tensor2D, bias?: tf.Tensor | null): tf.Tensor2D {
    return applyPacked(weight, x, bias);
  }
}

export const FP32_LINEAR = new UnquantizedLinearMethod('float32');

/** A registered kernel on the packed bytes, or dequantize into tfjs's matmul. */
export function applyPacked(weight: LinearWeightData, x: tf.Tensor2D, bias?: tf.Tensor | null): tf.Tensor2D {
  const w = weight.packed;
  if (!w) throw new Error(`${weight.name}: packed weight was never created (load it first)`);
  const [m, k] = x.shape;
  if (k !== w.k) throw new Error(`${weight.name}: input [${m}, ${k}], weight takes ${w.k} features`);
  // No rows (a DP dummy batch, an idle EP rank): nothing to dequantize.
  if (m === 0) return tf.zeros([0, w.n]) as tf.Tensor2D;
  const y = runKernel(w, x);
  if (y) {
    if (!bias) return y;
    const out = tf.add(y, bias) as tf.Tensor2D;
    y.dispose();
    return out;
  }
  return tf.tidy(() => linearOp(x, tf.tensor2d(w.dequantizeTransposed(), [w.k, w.n]), bias));
}

/**
 * `x` as the kernel of `weight` multiplies it: rounded to Q8_0 blocks (a new tensor) when a registered kernel
 * quantizes activations for its format, else null. For math that uses a weight without its kernel (MLA's
 * absorbed kv_b_proj) and must see the same input.
 */
export function kernelRoundedInput(weight: LinearWeightData, x: tf.Tensor2D): tf.Tensor2D | null {
  const w = weight.packed;
  const kernels = w ? quantKernelsFor(tf.getBackend()) : null;
  if (!w || !kernels || kernels.activations[w.format] !== 'a8' || x.shape[0] === 0) return null;
  return tf.tensor2d(roundTripActivationsQ8_0(x.dataSync() as Float32Array, x.shape[1]), x.shape);
}

function runKernel(w: PackedWeight, x: tf.Tensor2D): tf.Tensor2D | null {
  const kernels = quantKernelsFor(tf.getBackend());
  if (!kernels) return null;
  const [m, k] = x.shape;
  const run =
    w.format === 'q8_0' ? kernels.gemmQ8_0 && ((xs: Float32Array, out: Float32Array) => kernels.gemmQ8_0!(xs, m, k, w, w.n, out))
    : w.format === 'q4_0' ? kernels.gemmQ4_0 && ((xs: Float32Array, out: Float32Array) => kernels.gemmQ4_0!(xs, m, k, w, w.n, out))
    : kernels.gemmBf16 && ((xs: Float32Array, out: Float32Array) => kernels.gemmBf16!(xs, m, k, w.data, w.n, out));
  if (!run) return null;
  const out = new Float32Array(m * w.n);
  // CPU backends: dataSync is a read of host memory, not a device round trip.
  run(x.dataSync() as Float32Array, out);
  return tf.tensor2d(out, [m, w.n]);
}
