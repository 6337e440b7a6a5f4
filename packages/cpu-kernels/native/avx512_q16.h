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
 */
#ifndef WEFT_AVX512_Q16_H
#define WEFT_AVX512_Q16_H
/* Q8_0 up to this many activation rows runs q8s_tile (CPU time, 45056×2048 from memory: m = 1-3 14-57% faster than
 * the transposing tile; m = 4-7 8-12% slower) */
#define Q8S_MAX_M 3

#define TR 16 /* weight rows a tile */
/* The tiles prefetch the tile this many tiles on (its rows a line at a time as this one's k loop goes, and its
 * scales): 3 tiles (96 KB of Q8_0 at k = 2048) read Q8_0 at m = 1-2 from memory at 42-46 GB/s a core where the next
 * tile read 29-30, and 2 threads gain alike; Q4_0 about the same either way (A/B in one process, TinyLlama gate_up,
 * load 5-6). */
#define Q_AHEAD 3

/* extra: each activation block's correction (-128·Σx for Q8_0, -8·Σx for Q4_0), m*nb. */
static void prep_q16(act_t *a, int q4) {
  const size_t len = (size_t)a->m * a->nb;
  int32_t *corr = malloc((len ? len : 1) * sizeof *corr);
  for (size_t i = 0; i < len; i++) corr[i] = (q4 ? -8 : -128) * a->sx[i];
  a->extra = corr;
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

/* The 16 rows' scales of blocks b and b + 1 (lane l: row l), from one gather of 32 bits a row at block b0
 * (b0 = b, or b - 1 for an odd last block: then `hi` is block b). */
AI void scales2(const uint16_t *wd, __m512i idx, int b0, __m512 *lo, __m512 *hi) {
  const __m512i g = _mm512_i32gather_epi32(idx, (const void *)(wd + b0), 2);
  *lo = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
  *hi = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
}

/* Rows [r, r + 16) (w, wd: row r's) × activation rows [i0, i0 + NA): out[i, r + l] for l < nr.
 * tb (mode 1: written, 2: read instead of the weights; 0: unused): each block's 8 transposed zmm and its scales. */
AI void q16_tile(const act_t *a, const uint8_t *w, const uint16_t *wd, int nr, int i0, const int NA, float *out, int n, const int q4,
                 const int pf, __m512i *tb, const int mode) {
  const int k = a->k, nb = a->nb;
  const int32_t *corr = a->extra;
  const size_t wrow = q4 ? (size_t)k / 2 : (size_t)k, bb = q4 ? 16 : 32; /* bytes a row, a block */
  const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(nb));
  __m512 acc[8], dlo = _mm512_setzero_ps(), dhi = dlo;
  for (int ii = 0; ii < NA; ii++) acc[ii] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    if (pf) {
      /* the tile Q_AHEAD on: a line a row every 64 bytes of this one's, its scales a line a block */
      if (b * bb % 64 == 0)
        for (int l = 0; l < TR; l++) _mm_prefetch((const char *)(w + (Q_AHEAD * TR + l) * wrow + b * bb), _MM_HINT_T0);
      if ((size_t)b * 64 < (size_t)TR * nb * 2) _mm_prefetch((const char *)(wd + (size_t)Q_AHEAD * TR * nb) + b * 64, _MM_HINT_T0);
    }
    __m512i t[8];
    __m512 dw;
    if (mode == 2) {
      for (int g = 0; g < 8; g++) t[g] = _mm512_load_si512(tb + (size_t)b * 9 + g);
      dw = _mm512_castsi512_ps(_mm512_load_si512(tb + (size_t)b * 9 + 8));
    } else {
      if (q4) load_q4(w + b * bb, wrow, t);
      else load_q8(w + b * bb, wrow, t);
      if (!(b & 1)) {
        if (b + 1 < nb) scales2(wd, idx, b, &dlo, &dhi);
        else if (b) scales2(wd, idx, b - 1, &dhi, &dlo); /* the odd last block, in dlo */
        else {
          float f[16];
          for (int l = 0; l < TR; l++) f[l] = weft_fp16_to_fp32(wd[(size_t)l * nb]);
          dlo = _mm512_loadu_ps(f);
        }
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
  const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(nb));
  __m512 acc[Q8S_MAX_M];
  for (int ii = 0; ii < NA; ii++) acc[ii] = _mm512_setzero_ps();
  int b = 0;
  for (; b + 2 <= nb; b += 2) {
    if (pf) {
      for (int l = 0; l < TR; l++) _mm_prefetch((const char *)(w + (Q_AHEAD * TR + l) * wrow + b * 32), _MM_HINT_T0);
      if ((size_t)b * 32 < (size_t)TR * nb * 2) _mm_prefetch((const char *)(wd + (size_t)Q_AHEAD * TR * nb) + b * 32, _MM_HINT_T0);
    }
    __m512 dlo, dhi;
    scales2(wd, idx, b, &dlo, &dhi);
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
  if (b < nb) {
    __m512i t[8];
    __m512 dw, unused;
    load_q8(w + (size_t)b * 32, wrow, t);
    if (b) scales2(wd, idx, b - 1, &unused, &dw);
    else {
      float f[16];
      for (int l = 0; l < TR; l++) f[l] = weft_fp16_to_fp32(wd[(size_t)l * nb]);
      dw = _mm512_loadu_ps(f);
    }
    for (int ii = 0; ii < NA; ii++) {
      const size_t xb = (size_t)(i0 + ii) * nb + b;
      __m512i s = _mm512_set1_epi32(corr[xb]);
      for (int g = 0; g < 8; g++) s = _mm512_dpbusd_epi32(s, t[g], _mm512_set1_epi32(load32(a->qs + xb * QK + 4 * g)));
      acc[ii] = _mm512_add_ps(acc[ii], _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(a->d[xb]))));
    }
  }
  const __mmask16 keep = (__mmask16)((1u << nr) - 1);
  for (int ii = 0; ii < NA; ii++) _mm512_mask_storeu_ps(out + (size_t)(i0 + ii) * n, keep, acc[ii]);
}

/* Every activation row over one tile: 8 at a time, then 4, 2, 1. The first pass prefetches (Q_AHEAD) and, when
 * more passes follow, leaves the transposed tile in tb for them. */
AI void q16_tile_rows(const act_t *a, const uint8_t *w, const uint16_t *wd, int nr, float *out, int n, const int q4, int pf, __m512i *tb) {
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
    if (left >= 8) q16_tile(a, w, wd, nr, i0, 8, out, n, q4, pf, tb, mode), i0 += 8;
    else if (left >= 4) q16_tile(a, w, wd, nr, i0, 4, out, n, q4, pf, tb, mode), i0 += 4;
    else if (left >= 2) q16_tile(a, w, wd, nr, i0, 2, out, n, q4, pf, tb, mode), i0 += 2;
    else q16_tile(a, w, wd, nr, i0, 1, out, n, q4, pf, tb, mode), i0 += 1;
    pf = 0;
    mode = mode ? 2 : 0;
  }
}

AI void q16_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out, const int q4) {
  const size_t wrow = q4 ? (size_t)a->k / 2 : (size_t)a->k, nb = (size_t)a->nb;
  __m512i *tb = a->m > 8 ? aligned_alloc(64, nb * 9 * 64) : NULL;
  int r = r0;
  for (; r + TR <= r1; r += TR) q16_tile_rows(a, wqs + r * wrow, wd + r * nb, TR, out + r, n, q4, 1, tb);
  if (r < r1) {
    /* the last rows, fewer than 16: a padded copy (repeating the last row) keeps the tile whole */
    const int nr = r1 - r;
    uint8_t *w = malloc(TR * wrow);
    uint16_t *d = malloc(TR * nb * 2);
    for (int l = 0; l < TR; l++) {
      memcpy(w + l * wrow, wqs + (size_t)(r + (l < nr ? l : nr - 1)) * wrow, wrow);
      memcpy(d + l * nb, wd + (size_t)(r + (l < nr ? l : nr - 1)) * nb, nb * 2);
    }
    q16_tile_rows(a, w, d, nr, out + r, n, q4, 0, tb);
    free(w);
    free(d);
  }
  free(tb);
}

#endif
