/**
 * Element-wise reductions of several sources into one destination, always in
 * source order ((s0 ∘ s1) ∘ s2 …) so every rank and every algorithm gives
 * bit-identical float sums. Sources are taken two at a time to halve the
 * passes over the destination.
 */
import type { ReduceOp } from './communicator.js';

type Num = Float32Array | Int32Array;

export function reduceInto(dst: Num, srcs: Num[], op: ReduceOp): void {
  const n = dst.length;
  const first = srcs[0]!;
  if (srcs.length === 1) {
    dst.set(first.subarray(0, n));
    return;
  }
  let j = 1;
  if (op === 'sum') {
    const b = srcs[1]!;
    for (let i = 0; i < n; i++) dst[i] = first[i]! + b[i]!;
    j = 2;
    for (; j + 1 < srcs.length; j += 2) {
      const x = srcs[j]!;
      const y = srcs[j + 1]!;
      for (let i = 0; i < n; i++) dst[i] = dst[i]! + x[i]! + y[i]!;
    }
    if (j < srcs.length) {
      const x = srcs[j]!;
      for (let i = 0; i < n; i++) dst[i] = dst[i]! + x[i]!;
    }
    return;
  }
  dst.set(first.subarray(0, n));
  for (; j < srcs.length; j++) {
    const x = srcs[j]!;
    // `!(v <= d)` also takes NaN, so NaN propagates like torch.max.
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      if (!(v <= dst[i]!)) dst[i] = v;
    }
  }
}
