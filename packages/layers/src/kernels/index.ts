/**
 * Fused ops with weft's WebGPU kernels behind them. Each op runs its
 * registered kernel when `webgpuKernelsActive()` (webgpu backend, not turned
 * off with WEFT_WEBGPU_KERNELS=0) and the shapes fit; otherwise the same math
 * as tfjs ops, which is what every other backend runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ATTENTION, registerAttention, type AttentionAttrs } from './attention.js';
import { MATMUL_SMALL_M, SMALL_M_MAX, registerMatMulSmallM } from './matmul-small-m.js';
import { webgpuKernelsActive } from './program.js';
import { RMS_NORM, registerRMSNorm } from './rms-norm.js';
import { ROTARY, registerRotary, type RotaryAttrs } from './rotary.js';
import { SILU_MUL, registerSiluMul } from './silu-mul.js';

export { configureWebgpuKernels, webgpuKernelSettingsFromEnv, webgpuKernelsActive, type WebgpuKernelSettings } from './program.js';
export { setSmallMTiling } from './matmul-small-m.js';
export type { AttentionAttrs } from './attention.js';
export type { RotaryAttrs } from './rotary.js';

let registered = false;
function kernels(): boolean {
  if (!webgpuKernelsActive()) return false;
  if (!registered) {
    registerMatMulSmallM();
    registerRMSNorm();
    registerSiluMul();
    registerRotary();
    registerAttention();
    registered = true;
  }
  return true;
}

/** `x [M, K] · wT [K, N] (+ bias [N])`; the weight as weft stores it (`[in, out]`). */
export function linearOp(x: tf.Tensor2D, wT: tf.Tensor2D, bias?: tf.Tensor | null): tf.Tensor2D {
  const [m, k] = x.shape;
  const n = wT.shape[1];
  if (m >= 1 && m <= SMALL_M_MAX && n % 4 === 0 && wT.shape[0] === k && kernels()) {
    const inputs: tf.NamedTensorMap = bias ? { x, w: wT, bias } : { x, w: wT };
    return tf.engine().runKernel(MATMUL_SMALL_M, inputs) as tf.Tensor2D;
  }
  return tf.tidy(() => {
    const y = tf.matMul(x, wT);
    return (bias ? tf.add(y, bias) : y) as tf.Tensor2D;
  });
}

/** HF RMSNorm: `weight * (x * rsqrt(mean(x², -1) + eps))`, `x [T, H]`. */
export function rmsNormOp(x: tf.Tensor2D, weight: tf.Tensor, eps: number): tf.Tensor2D {
  if (x.shape[0] > 0 && kernels()) return tf.engine().runKernel(RMS_NORM, { x, weight }, { eps }) as tf.Tensor2D;
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true);
    const normed = tf.mul(x, tf.rsqrt(tf.add(variance, eps)));
    // HF multiplies the weight last (`self.weight * hidden_states`); keep that order.
    return tf.mul(weight, normed) as tf.Tensor2D;
  });
}

/** vLLM `SiluAndMul`: `gateUp [T, 2I] → silu(gate) · up [T, I]`. */
export function siluAndMulOp(gateUp: tf.Tensor2D): tf.Tensor2D {
  if (gateUp.shape[0] > 0 && kernels()) return tf.engine().runKernel(SILU_MUL, { gateUp }) as tf.Tensor2D;
  return tf.tidy(() => {
    const [gate, up] = tf.split(gateUp, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
    return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D;
  });
}

/**
 * Rotary on columns `[colStart, colStart + heads·headDim)` of `src [T, W]`,
 * cos/sin rows picked by `positions` from `[P, rotaryDim/2]` tables; null
 * when weft's kernel does not run (the caller then uses the composite path).
 */
export function rotaryColumnsKernel(
  src: tf.Tensor2D,
  positions: tf.Tensor1D,
  cosTable: tf.Tensor2D,
  sinTable: tf.Tensor2D,
  attrs: RotaryAttrs,
): tf.Tensor2D | null {
  if (src.shape[0] === 0 || !kernels()) return null;
  return tf.engine().runKernel(ROTARY, { src, positions, cosTable, sinTable }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/**
 * One sequence's causal attention (see kernels/attention.ts): `q [L, H·D]`,
 * `k [N, Hk, D]`, `v [N, Hk, Dv]` (ignored when `valueIsKeyPrefix`) →
 * `[L, H·Dv]`; null when weft's kernel does not run.
 */
export function attentionKernel(q: tf.Tensor2D, k: tf.Tensor3D, v: tf.Tensor3D, attrs: AttentionAttrs): tf.Tensor2D | null {
  if (q.shape[0] === 0 || !kernels()) return null;
  const kFlat = tf.reshape(k, [k.shape[0], -1]);
  const vFlat = attrs.valueIsKeyPrefix ? kFlat : tf.reshape(v, [v.shape[0], -1]);
  return tf.engine().runKernel(ATTENTION, { q, k: kFlat, v: vFlat }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

export { pinGpuDriverLibraries } from '@weft/core';
