/**
 * Moving the rank axis of gathered data, on flat arrays so no tensor op (and
 * no tensor to dispose) is involved. Shapes are row-major; `dim` may be
 * negative.
 */
import { WeftError } from '@weft/core';
import type { WireArray } from './communicator.js';

export function normalizeDim(dim: number, rank: number, what: string): number {
  const d = dim < 0 ? dim + rank : dim;
  if (!Number.isInteger(d) || d < 0 || d >= rank) throw new WeftError(`${what}: dim ${dim} is out of range for a tensor of rank ${rank}`);
  return d;
}

/** Elements before dim (outer) and from dim on (block per outer index). */
export function splitAt(shape: readonly number[], d: number): { outer: number; inner: number } {
  let outer = 1;
  for (let i = 0; i < d; i++) outer *= shape[i]!;
  let inner = 1;
  for (let i = d; i < shape.length; i++) inner *= shape[i]!;
  return { outer, inner };
}

/**
 * `ws` equal parts concatenated (rank axis first: [ws, outer, inner]) →
 * [outer, ws, inner], i.e. concatenated along the dim that `inner` starts at.
 */
export function rankAxisToDim<T extends WireArray>(src: T, ws: number, outer: number, inner: number): T {
  if (outer === 1) return src;
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const part = outer * inner;
  for (let r = 0; r < ws; r++) {
    for (let o = 0; o < outer; o++) {
      copy(src, r * part + o * inner, out, (o * ws + r) * inner, inner);
    }
  }
  return out;
}

/**
 * The inverse: [outer, ws, inner] → [ws, outer, inner], so rank r's slice
 * along a dim is one contiguous block (what reduceScatter sends to rank r).
 */
export function dimToRankAxis<T extends WireArray>(src: T, ws: number, outer: number, inner: number): T {
  if (outer === 1) return src;
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const part = outer * inner;
  for (let r = 0; r < ws; r++) {
    for (let o = 0; o < outer; o++) {
      copy(src, (o * ws + r) * inner, out, r * part + o * inner, inner);
    }
  }
  return out;
}

/** subarray+set costs two allocations: worth it for long runs only. */
function copy(src: WireArray, from: number, dst: WireArray, to: number, n: number): void {
  if (n > 32) dst.set(src.subarray(from, from + n), to);
  else for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}
