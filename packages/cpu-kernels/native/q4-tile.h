/*
 * Q4_0's tile16 layout (src/q4-tile.ts is its TS twin; these two are the only places that know it). A weight's rows
 * go in tiles of 16 (the last n % 16 rows stay as rows); a tile holds the same bytes as its 16 rows, at the same
 * place, in another order: per 64-byte column step of a row (the last step: what is left of the row's k/2 bytes), the
 * 16 rows' bytes of that step back to back; the fp16 scales likewise per step of 8 blocks. So a kernel reads a tile
 * as one sequential stream, rows 64 bytes apart (with rows, 16 streams k/2 bytes apart: too short for the L2
 * streamer at 2 threads), and a row's 8 scales are one 16-byte load. The blocks, scales and the integer dots on them
 * are the same: the same bits as with rows.
 */
#ifndef WEFT_Q4_TILE_H
#define WEFT_Q4_TILE_H
#include <stddef.h>

#define Q4T_ROWS 16
#define Q4T_QS 64 /* bytes of a row a step */
#define Q4T_D 8   /* scales of a row a step */

/* Where unit j (a byte of qs, or a scale) of row l of a tile lies from the tile's start, a row being `len` units in
 * steps of `step`; *stride (when given): the row stride of that step (its width). */
static inline size_t q4t_at(size_t len, size_t step, int l, size_t j, size_t *stride) {
  const size_t s = j / step, left = len - s * step, w = left < step ? left : step;
  if (stride) *stride = w;
  return s * step * Q4T_ROWS + (size_t)l * w + (j - s * step);
}

#endif
