/*
 * The AVX-512 Q8_0 / Q4_0 kernels (included by avx512.c), every batch size: tiles of 16 weight rows, one row a
 * 32-bit lane. Each block of the 16 rows is loaded and transposed in registers (8 zmm: lane l of zmm g holds row l's
 * 4 weights of group g), so that one vpdpbusd against 4 activation bytes broadcast from memory does 16 rows' work
 * and a block's integer dot ends whole in one lane: it is scaled once, by d_w·d_x, and summed in fp32 block after
 * block, as the scalar path does (the same bits). Q8_0 up to Q8S_MAX_M activation rows, where its transposes cost
 * more than the dot products, runs q8s_tile instead: the same integer block dots, from untransposed dot products
 * reduced in registers. So every batch size gives a row the same bits.
 * Activation rows go 8 at a time (then 4, 2, 1); the first pass transposes the tile into a buffer that the
 * others read, and prefetches the tile Q_AHEAD on.
 * Q4_0 weights come as rows or in q4-tile.h's tile16 layout (T): q4_at / d_at say where a tile's block and scales
 * are in either, and the kernels read them at the stride those give; the same blocks, dotted in the same order.
 */
#ifndef WEFT_AVX512_Q16_H
#define WEFT_AVX512_Q16_H
#include "q4-tile.h"
/* Q8_0 up to this many activation rows runs q8s_tile (CPU time, 45056×2048 from memory: m = 1-3 14-57% faster than
 * the transposing tile; m = 4-7 8-12% slower) */
#define Q8S_MAX_M 3

#define TR 16 /* weight rows a tile */
/* The tiles prefetch the tile this many tiles on (its rows a line at a time as this one's k loop goes, and its
 * scales): 3 tiles (96 KB of Q8_0 at k = 2048) read Q8_0 at m = 1-2 from memory at 42-46 GB/s a core where the next
 * tile read 29-30, and 2 threads gain alike; Q4_0 about the same either way (A/B in one process, TinyLlama gate_up,
 * load 5-6). */
#define Q_AHEAD 3
/* q4s_tile (Q4_0 at m = 1, 3) prefetches 2 tiles on (32 KB at k = 2048): with weights in huge pages, TinyLlama decode
 * order from memory, builds alternating in one process (load 1.7-2.1), 1 thread 26.1 → 30.5 GB/s (gate_up gemv 29.4
 * → 37.2, m = 3 20.3 → 22.6), 2 threads 32.6 → 33.3; 1 tile about the same as 2; Q8_0 measured 7% slower at 2. */
#define Q4S_AHEAD 2

/* Q4_0 at these activation row counts runs q4s_tile (untransposed nibbles), the others the transposing q16_tile:
 * cache-resident 512×2048, 1 thread, in one process (load 2-3), GB/s q16_tile → q4s_tile: m = 1 36.3 → 45.7,
 * m = 3 17.0 → 21.8, m = 2 29.2 → 27.2 (two rows share q16_tile's transposes). */
#define Q4S_MAX_M 3
#define Q4S_ROWS(m) ((m) == 1 || (m) == 3)

/* extra: each activation block's correction (-128·Σx for Q8_0, -8·Σx for Q4_0), m*nb; for q4s_tile then (from a
 * multiple of 64 bytes on) each row's blocks 4 at a time as q4s_quad reads them: the 4 blocks' first 16 bytes, then
 * their last 16. */
AI size_t q4s_offset(const act_t *a) { return ((size_t)a->m * a->nb * sizeof(int32_t) + 63) & ~(size_t)63; }

static void prep_q16(act_t *a, int q4) {
  const size_t len = (size_t)a->m * a->nb, nq = (size_t)a->nb / 4;
  const int quads = q4 && Q4S_ROWS(a->m) && nq > 0;
  uint8_t *extra = aligned_alloc(64, q4s_offset(a) + (quads ? (size_t)a->m * nq * 128 : 64));
  int32_t *corr = (int32_t *)extra;
  for (size_t i = 0; i < len; i++) corr[i] = (q4 ? -8 : -128) * a->sx[i];
  if (quads)
    for (int i = 0; i < a->m; i++)
      for (size_t q = 0; q < nq; q++) {
        const int8_t *x = a->qs + ((size_t)i * a->nb + 4 * q) * QK;
        int8_t *p = (int8_t *)(extra + q4s_offset(a)) + ((size_t)i * nq + q) * 128;
        for (int b = 0; b < 4; b++) {
          memcpy(p + 16 * b, x + QK * b, 16);
          memcpy(p + 64 + 16 * b, x + QK * b + 16, 16);
        }
      }
  a->extra = extra;
}

AI int32_t load32(const void *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Block b of 16 Q8_0 rows (w: row 0's block, stride wrow) as 8 zmm, t[g] lane l = row l's bytes 4g..4g+3, + 128. */
AI void load_q8(const uint8_t *w, size_t wrow, __m512i t[8]) {
  /* z[i]'s halves hold rows chosen so that the transpose below leaves row l in lane l */
  static const int lo[8] = {0, 1, 2, 3, 8, 9, 10, 11}, hi[8] = {4, 5, 6, 7, 12, 13, 14, 15};
  __m512i z[8], u[8], v[8];
  for (int i = 0; i < 8; i++)
    z[i] = _mm512_xor_si512(_mm512_mask_blend_epi64(0xf0, _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + lo[i] * wrow))),
                                                    _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + hi[i] * wrow)))),
                            _mm512_set1_epi8((char)0x80));
  for (int i = 0; i < 8; i += 2) {
    u[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
    u[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    v[h] = _mm512_unpacklo_epi64(u[h], u[h + 2]);     /* dwords 0 | 4 of rows z[h..h+3] */
    v[h + 1] = _mm512_unpackhi_epi64(u[h], u[h + 2]); /* 1 | 5 */
    v[h + 2] = _mm512_unpacklo_epi64(u[h + 1], u[h + 3]); /* 2 | 6 */
    v[h + 3] = _mm512_unpackhi_epi64(u[h + 1], u[h + 3]); /* 3 | 7 */
  }
  for (int g = 0; g < 4; g++) {
    t[g] = _mm512_shuffle_i64x2(v[g], v[g + 4], 0x88);
    t[g + 4] = _mm512_shuffle_i64x2(v[g], v[g + 4], 0xdd);
  }
}

/* Block b of 16 Q4_0 rows (w: row 0's 16 bytes, stride wrow): t[g] lane l = row l's weights 4g..4g+3 (g < 4 the
 * low nibbles of bytes 4g.., g ≥ 4 the high nibbles of bytes 4(g-4)..), unsigned. */
AI void load_q4(const uint8_t *w, size_t wrow, __m512i t[8]) {
  __m512i z[4], u[4];
  /* z[q]'s 128-bit lane j holds row 4j + q: the 4×4 transposes below leave row l in lane l */
  for (int q = 0; q < 4; q++) {
    /* broadcast loads and blends: no shuffle-port work (the transposes below have enough) */
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + q * wrow)));
    v = _mm512_mask_blend_epi32(0x00f0, v, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + (4 + q) * wrow))));
    v = _mm512_mask_blend_epi32(0x0f00, v, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + (8 + q) * wrow))));
    z[q] = _mm512_mask_blend_epi32(0xf000, v, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + (12 + q) * wrow))));
  }
  u[0] = _mm512_unpacklo_epi32(z[0], z[1]);
  u[1] = _mm512_unpackhi_epi32(z[0], z[1]);
  u[2] = _mm512_unpacklo_epi32(z[2], z[3]);
  u[3] = _mm512_unpackhi_epi32(z[2], z[3]);
  const __m512i r[4] = {_mm512_unpacklo_epi64(u[0], u[2]), _mm512_unpackhi_epi64(u[0], u[2]), _mm512_unpacklo_epi64(u[1], u[3]),
                        _mm512_unpackhi_epi64(u[1], u[3])};
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  for (int g = 0; g < 4; g++) {
    t[g] = _mm512_and_si512(r[g], m4);
    t[g + 4] = _mm512_and_si512(_mm512_srli_epi16(r[g], 4), m4);
  }
}

/* Lane l: l · stride (the gathers' index of row l, rows `stride` scales apart). */
AI __m512i row_idx(size_t stride) {
  return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32((int)stride));
}

/* The 16 rows' scales of a block and the next (lane l: row l), from one gather of 32 bits a row at p (row 0's scale
 * of the first block; idx: row_idx of the rows' stride). */
AI void scales2(const uint16_t *p, __m512i idx, __m512 *lo, __m512 *hi) {
  const __m512i g = _mm512_i32gather_epi32(idx, (const void *)p, 2);
  *lo = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
  *hi = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
}

/* The 16 rows' scales of blocks b..b+7 (dw[q] lane l: row l's block b + q), without a gather (AMD's gathers cost a
 * third of the Q4_0 decode tile's time, measured: 36 -> 54 GB/s cache-resident without them): each row's 8 scales
 * are one 16-byte load (broadcast and blended 4 rows a zmm: z[j] lane i = row 4j + i), two word permutes pick rows
 * 0-7 (and 8-15) of blocks 0-3 (and 4-7), one more per block puts its 16 rows in order. */
AI void scales8(const uint16_t *p, size_t st, __m512 dw[8]) {
  __m512i z[4];
  for (int j = 0; j < 4; j++) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + (size_t)(4 * j) * st)));
    v = _mm512_mask_blend_epi32(0x00f0, v, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + (size_t)(4 * j + 1) * st))));
    v = _mm512_mask_blend_epi32(0x0f00, v, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + (size_t)(4 * j + 2) * st))));
    z[j] = _mm512_mask_blend_epi32(0xf000, v, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + (size_t)(4 * j + 3) * st))));
  }
  /* word 8·q + r (q < 4, r < 8): row r's block q (+4 for hi): z pair word (r / 4)·32 + (r % 4)·8 + q */
  static const short lo_idx[32] = {0, 8, 16, 24, 32, 40, 48, 56, 1, 9, 17, 25, 33, 41, 49, 57, 2, 10, 18, 26, 34, 42, 50, 58, 3, 11, 19, 27, 35, 43, 51, 59};
  static const short hi_idx[32] = {4, 12, 20, 28, 36, 44, 52, 60, 5, 13, 21, 29, 37, 45, 53, 61, 6, 14, 22, 30, 38, 46, 54, 62, 7, 15, 23, 31, 39, 47, 55, 63};
  const __m512i il = _mm512_loadu_si512(lo_idx), ih = _mm512_loadu_si512(hi_idx);
  const __m512i a[2] = {_mm512_permutex2var_epi16(z[0], il, z[1]), _mm512_permutex2var_epi16(z[0], ih, z[1])};
  const __m512i c[2] = {_mm512_permutex2var_epi16(z[2], il, z[3]), _mm512_permutex2var_epi16(z[2], ih, z[3])};
  /* block q: words 8q..8q+7 of a (rows 0-7) then of c (rows 8-15) */
  static const short q_idx[4][32] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 32, 33, 34, 35, 36, 37, 38, 39},
    {8, 9, 10, 11, 12, 13, 14, 15, 40, 41, 42, 43, 44, 45, 46, 47},
    {16, 17, 18, 19, 20, 21, 22, 23, 48, 49, 50, 51, 52, 53, 54, 55},
    {24, 25, 26, 27, 28, 29, 30, 31, 56, 57, 58, 59, 60, 61, 62, 63},
  };
  for (int q = 0; q < 4; q++) {
    const __m512i iq = _mm512_loadu_si512(q_idx[q]);
    dw[q] = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(a[0], iq, c[0])));
    dw[q + 4] = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(a[1], iq, c[1])));
  }
}

/* The 16 rows' scales of one block (p: row 0's, rows st apart), without a gather (a last odd block). */
AI __m512 scales1(const uint16_t *p, size_t st) {
  float f[16];
  for (int l = 0; l < TR; l++) f[l] = weft_fp16_to_fp32(p[(size_t)l * st]);
  return _mm512_loadu_ps(f);
}

/* Q4_0 block b of row l of a tile (w: the tile's start; rows wrow bytes), as rows (T 0) or tile16 (T 1): its 16 bytes,
 * and in *st the row stride there. */
AI const uint8_t *q4_at(const uint8_t *w, size_t wrow, const int T, int l, int b, size_t *st) {
  if (!T) {
    *st = wrow;
    return w + (size_t)l * wrow + (size_t)b * 16;
  }
  return w + q4t_at(wrow, Q4T_QS, l, (size_t)b * 16, st);
}

/* Row 0's scale of block b of a tile (wd: the tile's scales; nb a row), and in *st the row stride there. */
AI const uint16_t *d_at(const uint16_t *wd, size_t nb, const int T, int b, size_t *st) {
  if (!T) {
    *st = nb;
    return wd + b;
  }
  return wd + q4t_at(nb, Q4T_D, 0, (size_t)b, st);
}

/* Rows [r, r + 16) (w, wd: row r's) × activation rows [i0, i0 + NA): out[i, r + l] for l < nr.
 * tb (mode 1: written, 2: read instead of the weights; 0: unused): each block's 8 transposed zmm and its scales. */
AI void q16_tile(const act_t *a, const uint8_t *w, const uint16_t *wd, int nr, int i0, const int NA, float *out, int n, const int q4,
                 const int T, const int pf, __m512i *tb, const int mode) {
  const int k = a->k, nb = a->nb;
  const int32_t *corr = a->extra;
  const size_t wrow = q4 ? (size_t)k / 2 : (size_t)k, bb = q4 ? 16 : 32; /* bytes a row, a block */
  const __m512i idx = row_idx((size_t)nb);
  __m512 acc[8], dlo = _mm512_setzero_ps(), dhi = dlo;
  for (int ii = 0; ii < NA; ii++) acc[ii] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    if (pf) {
      /* the tile Q_AHEAD on: a line a row every 64 bytes of this one's, its scales a line a block */
      if (b * bb % 64 == 0)
        for (int l = 0; l < TR; l++) {
          size_t st;
          const uint8_t *p = q4 ? q4_at(w + Q_AHEAD * TR * wrow, wrow, T, l, b, &st) : w + (Q_AHEAD * TR + l) * wrow + b * bb;
          _mm_prefetch((const char *)p, _MM_HINT_T0);
        }
      if ((size_t)b * 64 < (size_t)TR * nb * 2) _mm_prefetch((const char *)(wd + (size_t)Q_AHEAD * TR * nb) + b * 64, _MM_HINT_T0);
    }
    __m512i t[8];
    __m512 dw;
    if (mode == 2) {
      for (int g = 0; g < 8; g++) t[g] = _mm512_load_si512(tb + (size_t)b * 9 + g);
      dw = _mm512_castsi512_ps(_mm512_load_si512(tb + (size_t)b * 9 + 8));
    } else {
      if (q4) {
        size_t st;
        const uint8_t *p = q4_at(w, wrow, T, 0, b, &st);
        load_q4(p, st, t);
      } else load_q8(w + b * bb, wrow, t);
      if (!(b & 1)) {
        size_t ds;
        const uint16_t *pd = d_at(wd, (size_t)nb, T, b, &ds);
        if (b + 1 < nb) scales2(pd, T ? row_idx(ds) : idx, &dlo, &dhi);
        else if (b && !T) scales2(pd - 1, idx, &dhi, &dlo); /* the odd last block, in dlo */
        else dlo = scales1(pd, ds);
      }
      dw = b & 1 ? dhi : dlo;
      if (mode == 1) {
        for (int g = 0; g < 8; g++) _mm512_store_si512(tb + (size_t)b * 9 + g, t[g]);
        _mm512_store_si512(tb + (size_t)b * 9 + 8, _mm512_castps_si512(dw));
      }
    }
    for (int ii = 0; ii < NA; ii++) {
      const size_t xb = (size_t)(i0 + ii) * nb + b;
      const int8_t *x = a->qs + xb * QK;
      /* few activation rows: four short chains, not one of 8 (vpdpbusd's latency; integer sums, the same bits) */
      const int CH = NA <= 2 ? 4 : 1;
      __m512i s[4] = {_mm512_set1_epi32(corr[xb]), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int g = 0; g < 8; g++) s[g % CH] = _mm512_dpbusd_epi32(s[g % CH], t[g], _mm512_set1_epi32(load32(x + 4 * g)));
      const __m512i dot = CH == 1 ? s[0] : _mm512_add_epi32(_mm512_add_epi32(s[0], s[1]), _mm512_add_epi32(s[2], s[3]));
      acc[ii] = _mm512_add_ps(acc[ii], _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_set1_ps(a->d[xb]))));
    }
  }
  const __mmask16 keep = (__mmask16)((1u << nr) - 1);
  for (int ii = 0; ii < NA; ii++) _mm512_mask_storeu_ps(out + (size_t)(i0 + ii) * n, keep, acc[ii]);
}

/* Block b alone of the 16 rows (w, wd: row 0's) × activation rows [i0, i0 + NA), into acc: the transposed load and
 * q16_tile's sum (the untransposed tiles' blocks past their last whole pair / quad). */
AI void one_block(const act_t *a, const uint8_t *w, const uint16_t *wd, __m512i idx, int b, int i0, const int NA, __m512 *acc, const int q4,
                  const int T) {
  const int nb = a->nb;
  const int32_t *corr = a->extra;
  __m512i t[8];
  __m512 dw, unused;
  if (q4) {
    size_t st;
    const uint8_t *p = q4_at(w, (size_t)a->k / 2, T, 0, b, &st);
    load_q4(p, st, t);
  } else load_q8(w + (size_t)b * 32, (size_t)a->k, t);
  size_t ds;
  const uint16_t *pd = d_at(wd, (size_t)nb, T, b, &ds);
  /* (tile16: a block's neighbour may lie in another step) */
  if (b && !T) scales2(pd - 1, idx, &unused, &dw);
  else dw = scales1(pd, ds);
  for (int ii = 0; ii < NA; ii++) {
    const size_t xb = (size_t)(i0 + ii) * nb + b;
    __m512i s = _mm512_set1_epi32(corr[xb]);
    for (int g = 0; g < 8; g++) s = _mm512_dpbusd_epi32(s, t[g], _mm512_set1_epi32(load32(a->qs + xb * QK + 4 * g)));
    acc[ii] = _mm512_add_ps(acc[ii], _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(a->d[xb]))));
  }
}

/* Q8_0 with few activation rows (m ≤ Q8S_MAX_M): the transposes above cost more than the dot products there, so the
 * 16 rows' blocks are dotted as they lie (a block pair a zmm, 8 lanes a block) and each row's 8-lane partial sums are
 * then reduced in registers to one lane a row: the same integer block dots, scaled and summed as q16_tile does (the
 * same bits). An odd last block goes through the transposed load. */
AI void q8s_pair(const uint8_t *w, size_t wrow, __m512i xq, __m512i *lo, __m512i *hi) {
  const __m512i sgn = _mm512_set1_epi8((char)0x80);
  __m512i v[16], u[8], b[4];
  for (int l = 0; l < 16; l++) v[l] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(_mm512_loadu_si512(w + l * wrow), sgn), xq);
  for (int i = 0; i < 8; i++) u[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int j = 0; j < 4; j++) b[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(u[2 * j], u[2 * j + 1]), _mm512_unpackhi_epi64(u[2 * j], u[2 * j + 1]));
  /* b[j]'s 128-bit lane q: rows 4j..4j+3 over the pair's 16-byte quarter q (q < 2: the first block) */
  const __m512i c0 = _mm512_add_epi32(_mm512_shuffle_i64x2(b[0], b[1], 0x88), _mm512_shuffle_i64x2(b[0], b[1], 0xdd));
  const __m512i c1 = _mm512_add_epi32(_mm512_shuffle_i64x2(b[2], b[3], 0x88), _mm512_shuffle_i64x2(b[2], b[3], 0xdd));
  *lo = _mm512_shuffle_i64x2(c0, c1, 0x88);
  *hi = _mm512_shuffle_i64x2(c0, c1, 0xdd);
}

AI void q8s_tile(const act_t *a, const uint8_t *w, const uint16_t *wd, int nr, int i0, const int NA, float *out, int n, const int pf) {
  const int k = a->k, nb = a->nb;
  const int32_t *corr = a->extra;
  const size_t wrow = (size_t)k;
  const __m512i idx = row_idx((size_t)nb);
  __m512 acc[Q8S_MAX_M];
  for (int ii = 0; ii < NA; ii++) acc[ii] = _mm512_setzero_ps();
  int b = 0;
  for (; b + 2 <= nb; b += 2) {
    if (pf) {
      for (int l = 0; l < TR; l++) _mm_prefetch((const char *)(w + (Q_AHEAD * TR + l) * wrow + b * 32), _MM_HINT_T0);
      if ((size_t)b * 32 < (size_t)TR * nb * 2) _mm_prefetch((const char *)(wd + (size_t)Q_AHEAD * TR * nb) + b * 32, _MM_HINT_T0);
    }
    /* (scales8 here: cache-resident m = 1 +11%, but from memory 3-10% slower, in one process: kept the gather) */
    __m512 dlo, dhi;
    scales2(wd + b, idx, &dlo, &dhi);
    for (int ii = 0; ii < NA; ii++) {
      const size_t xb = (size_t)(i0 + ii) * nb + b;
      __m512i lo, hi;
      q8s_pair(w + (size_t)b * 32, wrow, _mm512_loadu_si512(a->qs + xb * QK), &lo, &hi);
      lo = _mm512_add_epi32(lo, _mm512_set1_epi32(corr[xb]));
      hi = _mm512_add_epi32(hi, _mm512_set1_epi32(corr[xb + 1]));
      acc[ii] = _mm512_add_ps(acc[ii], _mm512_mul_ps(_mm512_cvtepi32_ps(lo), _mm512_mul_ps(dlo, _mm512_set1_ps(a->d[xb]))));
      acc[ii] = _mm512_add_ps(acc[ii], _mm512_mul_ps(_mm512_cvtepi32_ps(hi), _mm512_mul_ps(dhi, _mm512_set1_ps(a->d[xb + 1]))));
    }
  }
  if (b < nb) one_block(a, w, wd, idx, b, i0, NA, acc, 0, 0);
  const __mmask16 keep = (__mmask16)((1u << nr) - 1);
  for (int ii = 0; ii < NA; ii++) _mm512_mask_storeu_ps(out + (size_t)(i0 + ii) * n, keep, acc[ii]);
}

/* Every activation row over one tile: 8 at a time, then 4, 2, 1. The first pass prefetches (Q_AHEAD) and, when
 * more passes follow, leaves the transposed tile in tb for them. */
/* Q4_0 with few activation rows (Q4S_ROWS): 4 blocks of each of the 16 rows as they lie (one 64-byte load a row:
 * 128-bit lane q is block q's 16 bytes), the low nibbles (weights 0-15) dotted with the blocks' first 16 activation
 * bytes and the high ones (16-31) with their last 16 (prep_q16 laid them out so: q4s_quad's xlo / xhi), so that lane q
 * of a row ends with 4 partial sums of block q; a row pair / quad reduction and a 4 × 4 transpose of 128-bit lanes then
 * leave o[q] lane l = row l's integer dot of block q: the same integer block dots as load_q4 + vpdpbusd, scaled and
 * summed block after block as q16_tile does (the same bits), with none of load_q4's 16 broadcast loads, 12 blends and
 * 8 transposing shuffles a block. Blocks past the last whole 4 go through the transposed load. */
AI void q4s_quad(const uint8_t *w, size_t wrow, __m512i xlo, __m512i xhi, __m512i o[4]) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512i v[16], u[8], b[4];
  for (int l = 0; l < 16; l++) {
    const __m512i q = _mm512_loadu_si512(w + l * wrow);
    v[l] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(q, m4), xlo),
                               _mm512_and_si512(_mm512_srli_epi16(q, 4), m4), xhi);
  }
  for (int i = 0; i < 8; i++) u[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int j = 0; j < 4; j++) b[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(u[2 * j], u[2 * j + 1]), _mm512_unpackhi_epi64(u[2 * j], u[2 * j + 1]));
  /* b[j]'s 128-bit lane q: rows 4j..4j+3 of block q */
  const __m512i t0 = _mm512_shuffle_i64x2(b[0], b[1], 0x44), t1 = _mm512_shuffle_i64x2(b[0], b[1], 0xee);
  const __m512i t2 = _mm512_shuffle_i64x2(b[2], b[3], 0x44), t3 = _mm512_shuffle_i64x2(b[2], b[3], 0xee);
  o[0] = _mm512_shuffle_i64x2(t0, t2, 0x88);
  o[1] = _mm512_shuffle_i64x2(t0, t2, 0xdd);
  o[2] = _mm512_shuffle_i64x2(t1, t3, 0x88);
  o[3] = _mm512_shuffle_i64x2(t1, t3, 0xdd);
}

AI void q4s_tile(const act_t *a, const uint8_t *w, const uint16_t *wd, int nr, const int NA, float *out, int n, const int T, const int pf) {
  const int k = a->k, nb = a->nb, nq = nb / 4;
  const int32_t *corr = a->extra;
  const int8_t *xq = (const int8_t *)a->extra + q4s_offset(a);
  const size_t wrow = (size_t)k / 2;
  const __m512i idx = row_idx((size_t)nb);
  __m512 acc[Q4S_MAX_M], dw8[8];
  for (int ii = 0; ii < NA; ii++) acc[ii] = _mm512_setzero_ps();
  int b = 0;
  for (int q = 0; q < nq; q++, b += 4) {
    if (pf) {
      for (int l = 0; l < TR; l++) {
        size_t st;
        _mm_prefetch((const char *)q4_at(w + Q4S_AHEAD * TR * wrow, wrow, T, l, b, &st), _MM_HINT_T0);
      }
      for (int o = 0; o < 128; o += 64)
        if ((size_t)b * 32 + o < (size_t)TR * nb * 2) _mm_prefetch((const char *)(wd + (size_t)Q4S_AHEAD * TR * nb) + b * 32 + o, _MM_HINT_T0);
    }
    /* blocks b..b+7 at once (two quads); a last quad alone by two gathers */
    if (!(q & 1)) {
      size_t ds;
      const uint16_t *pd = d_at(wd, (size_t)nb, T, b, &ds);
      if (b + 8 <= nb) scales8(pd, ds, dw8);
      else {
        const __m512i ix = T ? row_idx(ds) : idx;
        scales2(pd, ix, &dw8[0], &dw8[1]), scales2(pd + 2, ix, &dw8[2], &dw8[3]);
      }
    }
    const __m512 *dw = dw8 + (q & 1) * 4;
    size_t st;
    const uint8_t *pw = q4_at(w, wrow, T, 0, b, &st);
    for (int ii = 0; ii < NA; ii++) {
      const int8_t *x = xq + ((size_t)ii * nq + q) * 128;
      __m512i o[4];
      q4s_quad(pw, st, _mm512_load_si512(x), _mm512_load_si512(x + 64), o);
      const size_t xb = (size_t)ii * nb + b;
      for (int j = 0; j < 4; j++) {
        const __m512i dot = _mm512_add_epi32(o[j], _mm512_set1_epi32(corr[xb + j]));
        acc[ii] = _mm512_add_ps(acc[ii], _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[j], _mm512_set1_ps(a->d[xb + j]))));
      }
    }
  }
  for (; b < nb; b++) one_block(a, w, wd, idx, b, 0, NA, acc, 1, T);
  const __mmask16 keep = (__mmask16)((1u << nr) - 1);
  for (int ii = 0; ii < NA; ii++) _mm512_mask_storeu_ps(out + (size_t)ii * n, keep, acc[ii]);
}

AI void q16_tile_rows(const act_t *a, const uint8_t *w, const uint16_t *wd, int nr, float *out, int n, const int q4, const int T, int pf,
                       __m512i *tb) {
  if (q4 && Q4S_ROWS(a->m)) {
    if (a->m == 1) q4s_tile(a, w, wd, nr, 1, out, n, T, pf);
    else q4s_tile(a, w, wd, nr, 3, out, n, T, pf);
    return;
  }
  if (!q4 && a->m <= Q8S_MAX_M) {
    switch (a->m) {
      case 1: q8s_tile(a, w, wd, nr, 0, 1, out, n, pf); break;
      case 2: q8s_tile(a, w, wd, nr, 0, 2, out, n, pf); break;
      default: q8s_tile(a, w, wd, nr, 0, 3, out, n, pf); break;
    }
    return;
  }
  int mode = a->m > 8 ? 1 : 0;
  for (int i0 = 0; i0 < a->m;) {
    const int left = a->m - i0;
    if (left >= 8) q16_tile(a, w, wd, nr, i0, 8, out, n, q4, T, pf, tb, mode), i0 += 8;
    else if (left >= 4) q16_tile(a, w, wd, nr, i0, 4, out, n, q4, T, pf, tb, mode), i0 += 4;
    else if (left >= 2) q16_tile(a, w, wd, nr, i0, 2, out, n, q4, T, pf, tb, mode), i0 += 2;
    else q16_tile(a, w, wd, nr, i0, 1, out, n, q4, T, pf, tb, mode), i0 += 1;
    pf = 0;
    mode = mode ? 2 : 0;
  }
}

/* Rows [r0, r1) (r0 a multiple of 16; T: whole tiles in tile16, the last n % 16 rows as rows). */
AI void q16_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out, const int q4, const int T) {
  const size_t wrow = q4 ? (size_t)a->k / 2 : (size_t)a->k, nb = (size_t)a->nb;
  __m512i *tb = a->m > 8 ? aligned_alloc(64, nb * 9 * 64) : NULL;
  int r = r0;
  for (; r + TR <= r1; r += TR) q16_tile_rows(a, wqs + r * wrow, wd + r * nb, TR, out + r, n, q4, T, 1, tb);
  if (r < r1) {
    /* the last rows, fewer than 16: a padded copy (repeating the last row) keeps the tile whole */
    const int nr = r1 - r;
    uint8_t *w = malloc(TR * wrow);
    uint16_t *d = malloc(TR * nb * 2);
    for (int l = 0; l < TR; l++) {
      memcpy(w + l * wrow, wqs + (size_t)(r + (l < nr ? l : nr - 1)) * wrow, wrow);
      memcpy(d + l * nb, wd + (size_t)(r + (l < nr ? l : nr - 1)) * nb, nb * 2);
    }
    q16_tile_rows(a, w, d, nr, out + r, n, q4, 0, 0, tb);
    free(w);
    free(d);
  }
  free(tb);
}

#endif
