/**
 * Element-wise reductions in JS: the tails the SIMD kernels leave, and hosts
 * without wasm SIMD. Same order and rounding as the kernels
 * (((s0 ∘ s1) ∘ s2) …, float32 rounding after every step), so a result never
 * depends on which path computed it. One loop per element type keeps V8's
 * element access monomorphic.
 */
import type { ReduceOp } from './communicator.js';

type Num = Float32Array | Int32Array;

export function reduceInto(dst: Num, srcs: Num[], op: ReduceOp): void {
  const first = srcs[0]!;
  dst.set(first.subarray(0, dst.length));
  for (let j = 1; j < srcs.length; j++) {
    const x = srcs[j]!;
    if (op === 'max') maxInto(dst, x);
    else if (dst instanceof Float32Array) addF32(dst, x as Float32Array);
    else addI32(dst, x as Int32Array);
  }
}

function addF32(dst: Float32Array, x: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] = dst[i]! + x[i]!;
}

function addI32(dst: Int32Array, x: Int32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] = (dst[i]! + x[i]!) | 0;
}

function maxInto(dst: Num, x: Num): void {
  for (let i = 0; i < dst.length; i++) {
    const v = x[i]!;
    // NaN on either side wins, as with f32x4.max and torch.max.
    if (v > dst[i]! || v !== v) dst[i] = v;
  }
}
