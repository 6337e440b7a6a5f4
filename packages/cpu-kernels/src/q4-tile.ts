/**
 * Q4_0's tile16 layout (native/q4-tile.h is its C twin; these two are the only
 * places that know it). The rows of a `[n, k]` weight go in tiles of 16 (the
 * last n % 16 rows stay as rows); a tile holds the same bytes as its 16 rows,
 * at the same place, in another order: per 64-byte column step of a row (the
 * last step: what is left of the row's k/2 bytes), the 16 rows' bytes of that
 * step back to back; the fp16 scales likewise per step of 8 blocks. The native
 * AVX-512 kernels then read a tile as one sequential stream (rows 64 bytes
 * apart) instead of 16 streams k/2 bytes apart, which the hardware prefetcher
 * follows at 2 threads (docs/benchmarks/cpu-kernels.md, 2026-12-04). The same
 * blocks, the same integer dots in the same order: the same bits as rows.
 *
 * A weight is tiled once all its rows are in (a loader stores rows at any
 * offset), by its owner (@weft/layers' processWeightsAfterLoading); every reader
 * of the bytes either takes both layouts (the native kernels) or reads
 * `q4_0Rows` (dequantization, the portable kernels, the WebGPU upload).
 */
import { checkQ4_0, QK, type Q4_0Layout, type Q4_0Weight } from './formats.js';

export const Q4_TILE_ROWS = 16;
const QS_STEP = 64; // bytes of a row a step
const D_STEP = 8; // scales of a row a step

/**
 * A tile of `a` from `base` (16 rows of `len` units, `step` units a step), rows → tile16 (`tile`) or back, through
 * `scratch` (16·len units). Unit j of row l is at l·len + j in rows; in tile16 at s·step·16 + l·w + (j − s·step), s
 * the step of j, w its width.
 */
function permuteTile(a: Uint8Array | Uint16Array | Uint32Array, base: number, len: number, step: number, scratch: typeof a, tile: boolean): void {
  scratch.set(a.subarray(base, base + Q4_TILE_ROWS * len));
  for (let s0 = 0; s0 < len; s0 += step) {
    const w = Math.min(step, len - s0), t0 = base + s0 * Q4_TILE_ROWS;
    for (let l = 0; l < Q4_TILE_ROWS; l++) {
      const r = l * len + s0, t = t0 + l * w;
      if (tile) for (let j = 0; j < w; j++) a[t + j] = scratch[r + j]!;
      else for (let j = 0; j < w; j++) a[base + r + j] = scratch[t - base + j]!;
    }
  }
}

/** qs as 32-bit words where it is aligned (4× fewer moves; a row's k/2 bytes are a multiple of 16). */
function qsUnits(qs: Uint8Array): { a: Uint8Array | Uint32Array; per: number } {
  return qs.byteOffset % 4 === 0 ? { a: new Uint32Array(qs.buffer, qs.byteOffset, qs.length / 4), per: 4 } : { a: qs, per: 1 };
}

/** Each whole tile of `w` ([n, k]) rows → tile16 (`tile`) or back, in place. */
function permute(w: Q4_0Weight, n: number, k: number, tile: boolean): void {
  const nb = k / QK, { a, per } = qsUnits(w.qs), wrow = k / 2 / per;
  const sq = a instanceof Uint32Array ? new Uint32Array(Q4_TILE_ROWS * wrow) : new Uint8Array(Q4_TILE_ROWS * wrow);
  const sd = new Uint16Array(Q4_TILE_ROWS * nb);
  for (let r = 0; r + Q4_TILE_ROWS <= n; r += Q4_TILE_ROWS) {
    permuteTile(a, r * wrow, wrow, QS_STEP / per, sq, tile);
    permuteTile(w.d, r * nb, nb, D_STEP, sd, tile);
  }
}

/** `w` ([n, k]) in place in `to`'s layout (from its own, `w.layout`, rows when absent); returns the layout it is now in. */
export function repackQ4_0(w: Q4_0Weight, n: number, k: number, to: Q4_0Layout): Q4_0Layout {
  checkQ4_0('repackQ4_0', w, n, k);
  const from = w.layout ?? 'rows';
  if (from !== to) permute(w, n, k, to === 'tile16');
  return to;
}

/** `w` ([n, k]) in rows: itself when it is, else a copy put back in rows (dequantization, the portable kernels, uploads). */
export function q4_0Rows(w: Q4_0Weight, n: number, k: number): Q4_0Weight {
  if ((w.layout ?? 'rows') === 'rows') return w;
  checkQ4_0('q4_0Rows', w, n, k);
  const copy: Q4_0Weight = { qs: w.qs.slice(), d: w.d.slice(), layout: 'tile16' };
  copy.layout = repackQ4_0(copy, n, k, 'rows');
  return copy;
}
