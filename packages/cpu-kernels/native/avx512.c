/*
 * AVX-512 path (F, BW, VL, DQ, VNNI): compiled with those flags, called only when the CPU has them.
 * Q8_0 / Q4_0 × Q8_0 activations: vpdpbusd (u8 × s8) over two blocks per zmm. Q8_0 weights are made
 * unsigned by xor 0x80 (w + 128) and Q4_0 nibbles are unsigned already (q, value q - 8); the offsets come
 * back exactly as integer corrections -128·Σx / -8·Σx seeded into the accumulator (lane 0 of each block).
 * Each block's integer dot is then scaled by d_w·d_x and summed in fp32.
 * bf16 (weight-only): bf16 widened to fp32 by a zero-extend and a shift; x fp32 as it is.
 * Tiles of 4 weight rows × up to 4 activation rows: a weight tile is read from memory once per call, and the
 * next tile is prefetched while this one computes (prefetch_next). Batches of 8+ rows run Q8_0/Q4_0 through
 * avx512_q16.h; batches under 4 rows run bf16 8 wide (bf16_tile8).
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#define AI static inline __attribute__((always_inline))
#include "avx512_q16.h"

/* extra for Q: Q8_0: per activation row i and block pair p, a zmm of corrections (lanes 0 and 8) and one of
 * scales (lanes 0-7, 8-15). Q4_0: per row and group of 4 blocks, the blocks' first 16 elements (xa) and last 16
 * (xb) gathered so that each 128-bit lane holds one block (the nibbles of 4 weight blocks unpack into exactly
 * that order), corrections in lanes 0, 4, 8, 12 and scales in lanes 4j..4j+3. */
typedef struct {
  int np;        /* Q8_0: block pairs a row; Q4_0: groups of 4 blocks */
  int32_t *corr; /* m*np*16 */
  float *dx;     /* m*np*16 */
  int8_t *xab;   /* Q4_0: m*np*128 */
} qprep_t;

static void prep_q4(act_t *a) {
  const int ng = a->nb / 4, nb = a->nb;
  qprep_t *p = malloc(sizeof *p);
  p->np = ng;
  size_t len = (size_t)a->m * (ng ? ng : 1) * 16;
  p->corr = aligned_alloc(64, len * 4);
  p->dx = aligned_alloc(64, len * 4);
  p->xab = aligned_alloc(64, len * 8);
  for (int i = 0; i < a->m; i++)
    for (int g = 0; g < ng; g++) {
      const size_t o = (size_t)i * ng + g;
      int32_t *c = p->corr + o * 16;
      float *d = p->dx + o * 16;
      int8_t *xa = p->xab + o * 128, *xb = xa + 64;
      memset(c, 0, 64);
      for (int j = 0; j < 4; j++) {
        const int b = 4 * g + j;
        const int8_t *x = a->qs + (size_t)i * a->k + (size_t)b * QK;
        c[4 * j] = -8 * a->sx[(size_t)i * nb + b];
        for (int l = 0; l < 4; l++) d[4 * j + l] = a->d[(size_t)i * nb + b];
        memcpy(xa + 16 * j, x, 16);
        memcpy(xb + 16 * j, x + 16, 16);
      }
    }
  a->extra = p;
}

static void prep_q(act_t *a, int q4) {
  if (a->m >= Q16_MIN_M) {
    prep_q16(a, q4);
    return;
  }
  if (q4) {
    prep_q4(a);
    return;
  }
  const int np = a->nb / 2;
  qprep_t *p = malloc(sizeof *p);
  p->np = np;
  size_t len = (size_t)a->m * (np ? np : 1) * 16;
  p->corr = aligned_alloc(64, len * 4);
  p->dx = aligned_alloc(64, len * 4);
  p->xab = NULL;
  const int32_t off = -128;
  for (int i = 0; i < a->m; i++)
    for (int q = 0; q < np; q++) {
      int32_t *c = p->corr + ((size_t)i * np + q) * 16;
      float *d = p->dx + ((size_t)i * np + q) * 16;
      memset(c, 0, 64);
      c[0] = off * a->sx[(size_t)i * a->nb + 2 * q];
      c[8] = off * a->sx[(size_t)i * a->nb + 2 * q + 1];
      for (int l = 0; l < 8; l++) {
        d[l] = a->d[(size_t)i * a->nb + 2 * q];
        d[8 + l] = a->d[(size_t)i * a->nb + 2 * q + 1];
      }
    }
  a->extra = p;
}

AI __m512 pair_scales(const uint16_t *wd) {
  int32_t two;
  memcpy(&two, wd, 4);
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(two))));
}

/* Two blocks of weights as 64 unsigned bytes in activation order. */
AI __m512i load_pair(const uint8_t *w, int q4) {
  if (!q4) return _mm512_xor_si512(_mm512_loadu_si512(w), _mm512_set1_epi8((char)0x80));
  const __m512i dup = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
  const __m512i sh = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
  __m512i z = _mm512_permutexvar_epi64(dup, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)w)));
  return _mm512_and_si512(_mm512_srlv_epi64(z, sh), _mm512_set1_epi8(0x0f));
}

/* One block (the odd last one) as 32 unsigned bytes. */
AI __m256i load_block(const uint8_t *w, int q4) {
  if (!q4) return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w), _mm256_set1_epi8((char)0x80));
  __m128i b = _mm_loadu_si128((const __m128i *)w);
  __m128i m = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

AI int hsum256_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* The weights of the next tile (the NR rows after this one's), a cache line a row per step of this tile's k loop,
 * and their scales a line a step: without it each tile starts NR cold streams and one core reads ~60% of the wall. */
AI void prefetch_next(const uint8_t *wqs, const uint16_t *wd, int r, const int NR, size_t wrow, int nb, int step, size_t off) {
  const uint8_t *next = wqs + (size_t)(r + NR) * wrow + off;
  for (int rr = 0; rr < NR; rr++) _mm_prefetch((const char *)(next + rr * wrow), _MM_HINT_T0);
  if (step * 32 < NR * nb) _mm_prefetch((const char *)(wd + (size_t)(r + NR) * nb) + step * 64, _MM_HINT_T0);
}

AI void q_tile(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r, const int NR, int i0, const int NA, int n, float *out,
               const int q4, const int pf) {
  const qprep_t *P = a->extra;
  const int k = a->k, nb = a->nb, np = P->np;
  const size_t wrow = q4 ? (size_t)k / 2 : (size_t)k; /* bytes a weight row */
  const int pb = q4 ? 32 : 64;                        /* bytes a block pair */
  __m512 acc[4][4];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = _mm512_setzero_ps();
  for (int p = 0; p < np; p++) {
    __m512i w[4];
    __m512 dw[4];
    if (pf) prefetch_next(wqs, wd, r, NR, wrow, nb, p, (size_t)p * pb);
    for (int rr = 0; rr < NR; rr++) {
      w[rr] = load_pair(wqs + (size_t)(r + rr) * wrow + (size_t)p * pb, q4);
      dw[rr] = pair_scales(wd + (size_t)(r + rr) * nb + 2 * p);
    }
    for (int ii = 0; ii < NA; ii++) {
      const size_t o = ((size_t)(i0 + ii) * np + p) * 16;
      const __m512i xq = _mm512_loadu_si512(a->qs + (size_t)(i0 + ii) * k + (size_t)p * 64);
      const __m512i c = _mm512_load_si512(P->corr + o);
      const __m512 dx = _mm512_load_ps(P->dx + o);
      for (int rr = 0; rr < NR; rr++) {
        __m512i s = _mm512_dpbusd_epi32(c, w[rr], xq);
        acc[rr][ii] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[rr], dx), acc[rr][ii]);
      }
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      float sum = _mm512_reduce_add_ps(acc[rr][ii]);
      if (nb & 1) {
        const int b = nb - 1;
        __m256i wv = load_block(wqs + (size_t)(r + rr) * wrow + (size_t)b * (pb / 2), q4);
        __m256i xv = _mm256_loadu_si256((const __m256i *)(a->qs + (size_t)(i0 + ii) * k + (size_t)b * QK));
        int dot = hsum256_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv)) + (q4 ? -8 : -128) * a->sx[(size_t)(i0 + ii) * nb + b];
        sum += (float)dot * (weft_fp16_to_fp32(wd[(size_t)(r + rr) * nb + b]) * a->d[(size_t)(i0 + ii) * nb + b]);
      }
      out[(size_t)(i0 + ii) * n + r + rr] = sum;
    }
}

/* Q4_0: 4 blocks (64 bytes of nibbles) a zmm; blocks past the last whole group of 4 one at a time. */
AI void q4_tile(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r, const int NR, int i0, const int NA, int n, float *out, const int pf) {
  const qprep_t *P = a->extra;
  const int k = a->k, nb = a->nb, ng = P->np;
  const size_t wrow = (size_t)k / 2;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  __m512 acc[4][4];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = _mm512_setzero_ps();
  for (int g = 0; g < ng; g++) {
    __m512i lo[4], hi[4];
    __m512 dw[4];
    if (pf) prefetch_next(wqs, wd, r, NR, wrow, nb, g, (size_t)g * 64);
    for (int rr = 0; rr < NR; rr++) {
      const __m512i v = _mm512_loadu_si512(wqs + (size_t)(r + rr) * wrow + (size_t)g * 64);
      lo[rr] = _mm512_and_si512(v, m4);
      hi[rr] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(wd + (size_t)(r + rr) * nb + 4 * g)));
      dw[rr] = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d4));
    }
    for (int ii = 0; ii < NA; ii++) {
      const size_t o = (size_t)(i0 + ii) * ng + g;
      const __m512i xa = _mm512_load_si512(P->xab + o * 128), xb = _mm512_load_si512(P->xab + o * 128 + 64);
      const __m512i c = _mm512_load_si512(P->corr + o * 16);
      const __m512 dx = _mm512_load_ps(P->dx + o * 16);
      for (int rr = 0; rr < NR; rr++) {
        __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c, lo[rr], xa), hi[rr], xb);
        acc[rr][ii] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[rr], dx), acc[rr][ii]);
      }
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      float sum = _mm512_reduce_add_ps(acc[rr][ii]);
      for (int b = 4 * ng; b < nb; b++) {
        __m256i wv = load_block(wqs + (size_t)(r + rr) * wrow + (size_t)b * 16, 1);
        __m256i xv = _mm256_loadu_si256((const __m256i *)(a->qs + (size_t)(i0 + ii) * k + (size_t)b * QK));
        int dot = hsum256_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv)) - 8 * a->sx[(size_t)(i0 + ii) * nb + b];
        sum += (float)dot * (weft_fp16_to_fp32(wd[(size_t)(r + rr) * nb + b]) * a->d[(size_t)(i0 + ii) * nb + b]);
      }
      out[(size_t)(i0 + ii) * n + r + rr] = sum;
    }
}

#ifndef QNA
#define QNA 4
#endif
#define TILE_NA(NR, q4)                                                                         \
  for (int i0 = 0; i0 < a->m; i0 += QNA) {                                                      \
    switch (a->m - i0 >= QNA ? QNA : a->m - i0) {                                               \
      case 4: q_tile(a, wqs, wd, r, NR, i0, 4, n, out, q4, NR == 4 && i0 == 0); break;          \
      case 3: q_tile(a, wqs, wd, r, NR, i0, 3, n, out, q4, NR == 4 && i0 == 0); break;          \
      case 2: q_tile(a, wqs, wd, r, NR, i0, 2, n, out, q4, NR == 4 && i0 == 0); break;          \
      default: q_tile(a, wqs, wd, r, NR, i0, 1, n, out, q4, NR == 4 && i0 == 0); break;         \
    }                                                                                           \
  }

AI void q_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out, const int q4) {
  int r = r0;
  for (; r + 4 <= r1; r += 4) TILE_NA(4, q4)
  for (; r < r1; r++) TILE_NA(1, q4)
}

static void q8_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) {
  if (a->m >= Q16_MIN_M) q16_rows(a, wqs, wd, r0, r1, n, out, 0);
  else q_rows(a, wqs, wd, r0, r1, n, out, 0);
}
#define Q4_NA(NR)                                                                               \
  for (int i0 = 0; i0 < a->m; i0 += QNA) {                                                      \
    switch (a->m - i0 >= QNA ? QNA : a->m - i0) {                                               \
      case 4: q4_tile(a, wqs, wd, r, NR, i0, 4, n, out, NR == 4 && i0 == 0); break;             \
      case 3: q4_tile(a, wqs, wd, r, NR, i0, 3, n, out, NR == 4 && i0 == 0); break;             \
      case 2: q4_tile(a, wqs, wd, r, NR, i0, 2, n, out, NR == 4 && i0 == 0); break;             \
      default: q4_tile(a, wqs, wd, r, NR, i0, 1, n, out, NR == 4 && i0 == 0); break;            \
    }                                                                                           \
  }

static void q4_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) {
  if (a->m >= Q16_MIN_M) {
    q16_rows(a, wqs, wd, r0, r1, n, out, 1);
    return;
  }
  int r = r0;
  for (; r + 4 <= r1; r += 4) Q4_NA(4)
  for (; r < r1; r++) Q4_NA(1)
}

/* bf16 (weight-only): 16 bf16 zero-extended to 32 bits and shifted up are their fp32 values; x is read as it is.
 * One accumulator per output (lanes: the 16 positions of a 32-element chunk's halves), reduced at the end: the
 * same order whatever the tile, so a row's result depends neither on the thread split nor on the batch's other
 * rows (from 4 rows on; under 4, bf16_tile8's order). */
AI __m512 bf16_widen(const uint16_t *w) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)w)), 16));
}

AI void bf16_tile(const act_t *a, const uint16_t *w, int r, const int NR, int i0, const int NA, int n, float *out, const int pf) {
  const int k = a->k, kc = k / 32;
  __m512 acc[4][4];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = _mm512_setzero_ps();
  for (int c = 0; c < kc; c++) {
    __m512 wl[4], wh[4];
    if (pf)
      for (int rr = 0; rr < NR; rr++) _mm_prefetch((const char *)(w + (size_t)(r + NR + rr) * k + (size_t)c * 32), _MM_HINT_T0);
    for (int rr = 0; rr < NR; rr++) {
      wl[rr] = bf16_widen(w + (size_t)(r + rr) * k + (size_t)c * 32);
      wh[rr] = bf16_widen(w + (size_t)(r + rr) * k + (size_t)c * 32 + 16);
    }
    for (int ii = 0; ii < NA; ii++) {
      const __m512 xl = _mm512_loadu_ps(a->x + (size_t)(i0 + ii) * k + (size_t)c * 32);
      const __m512 xh = _mm512_loadu_ps(a->x + (size_t)(i0 + ii) * k + (size_t)c * 32 + 16);
      for (int rr = 0; rr < NR; rr++) acc[rr][ii] = _mm512_fmadd_ps(wh[rr], xh, _mm512_fmadd_ps(wl[rr], xl, acc[rr][ii]));
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      float sum = _mm512_reduce_add_ps(acc[rr][ii]);
      const float *x = a->x + (size_t)(i0 + ii) * k;
      const uint16_t *wr = w + (size_t)(r + rr) * k;
      for (int j = kc * 32; j < k; j++) {
        uint32_t u = (uint32_t)wr[j] << 16;
        float f;
        memcpy(&f, &u, 4);
        sum += x[j] * f;
      }
      out[(size_t)(i0 + ii) * n + r + rr] = sum;
    }
}

#define BF16_NA(NR)                                                                   \
  for (int i0 = 0; i0 < a->m; i0 += 4) {                                              \
    const int pf = NR == 4 && i0 == 0;                                                \
    switch (a->m - i0 >= 4 ? 4 : a->m - i0) {                                         \
      case 4: bf16_tile(a, w, r, NR, i0, 4, n, out, pf); break;                       \
      case 3: bf16_tile(a, w, r, NR, i0, 3, n, out, pf); break;                       \
      case 2: bf16_tile(a, w, r, NR, i0, 2, n, out, pf); break;                       \
      default: bf16_tile(a, w, r, NR, i0, 1, n, out, pf); break;                      \
    }                                                                                 \
  }

/* Decode (m < 4): 8 bf16 a step (16 bytes a row), one accumulator a row, as the AVX2 path: from memory this reads
 * 10-20% faster on Zen 5 than the 512-bit tile above at m = 1 (measured, alternating; the tile's arithmetic is not
 * what limits it), which in turn is faster from 4 activation rows on. */
AI void bf16_tile8(const act_t *a, const uint16_t *w, int r, const int NR, int i0, const int NA, int n, float *out, const int pf) {
  const int k = a->k, kc = k / 8;
  __m256 acc[4][3];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = _mm256_setzero_ps();
  for (int c = 0; c < kc; c++) {
    __m256 wf[4];
    if (pf && c % 4 == 0)
      for (int rr = 0; rr < NR; rr++) _mm_prefetch((const char *)(w + (size_t)(r + NR + rr) * k + (size_t)c * 8), _MM_HINT_T0);
    for (int rr = 0; rr < NR; rr++)
      wf[rr] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + (size_t)(r + rr) * k + c * 8))), 16));
    for (int ii = 0; ii < NA; ii++) {
      const __m256 xv = _mm256_loadu_ps(a->x + (size_t)(i0 + ii) * k + c * 8);
      for (int rr = 0; rr < NR; rr++) acc[rr][ii] = _mm256_fmadd_ps(wf[rr], xv, acc[rr][ii]);
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[rr][ii]), _mm256_extractf128_ps(acc[rr][ii], 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      float sum = _mm_cvtss_f32(s);
      const float *x = a->x + (size_t)(i0 + ii) * k;
      const uint16_t *wr = w + (size_t)(r + rr) * k;
      for (int j = kc * 8; j < k; j++) {
        uint32_t u = (uint32_t)wr[j] << 16;
        float f;
        memcpy(&f, &u, 4);
        sum += x[j] * f;
      }
      out[(size_t)(i0 + ii) * n + r + rr] = sum;
    }
}

#define BF16_8(NR)                                                                                  \
  switch (a->m) {                                                                                   \
    case 3: bf16_tile8(a, w, r, NR, 0, 3, n, out, NR == 4); break;                                  \
    case 2: bf16_tile8(a, w, r, NR, 0, 2, n, out, NR == 4); break;                                  \
    default: bf16_tile8(a, w, r, NR, 0, 1, n, out, NR == 4); break;                                 \
  }

static void bf16_rows(const act_t *a, const uint16_t *w, int r0, int r1, int n, float *out) {
  int r = r0;
  if (a->m < 4) {
    for (; r + 4 <= r1; r += 4) BF16_8(4)
    for (; r < r1; r++) BF16_8(1)
    return;
  }
  for (; r + 4 <= r1; r += 4) BF16_NA(4)
  for (; r < r1; r++) BF16_NA(1)
}

/* x → Q8_0 blocks, bit for bit as addon.c's quantize_act: d = amax/127, q = x·(1/d) rounded half to even (the
 * rounding mode's nearest, as nearbyintf), d kept fp16-rounded (F16C: round to nearest even, as weft_fp32_to_fp16). */
static void quantize(act_t *a) {
  const __m512 abs = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int i = 0; i < a->m; i++)
    for (int b = 0; b < a->nb; b++) {
      const size_t o = (size_t)i * a->k + (size_t)b * QK;
      const __m512 x0 = _mm512_loadu_ps(a->x + o), x1 = _mm512_loadu_ps(a->x + o + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(x0, abs), _mm512_and_ps(x1, abs)));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
      const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
      _mm_storeu_si128((__m128i *)(a->qs + o), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128((__m128i *)(a->qs + o + 16), _mm512_cvtepi32_epi8(q1));
      a->d[(size_t)i * a->nb + b] = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
      a->sx[(size_t)i * a->nb + b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* The Q prep's qprep_t, or avx512_q16.h's corrections (bf16 has no prep). */
static void release(act_t *a) {
  if (a->m >= Q16_MIN_M) {
    free(a->extra);
    a->extra = NULL;
    return;
  }
  qprep_t *p = a->extra;
  free(p->corr);
  free(p->dx);
  free(p->xab);
  free(p);
  a->extra = NULL;
}

const isa_t isa_avx512 = {"avx512", NULL, prep_q, q8_rows, q4_rows, NULL, bf16_rows, release, &dense_avx512, quantize};
