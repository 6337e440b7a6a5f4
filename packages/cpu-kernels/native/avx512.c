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

/* Q8_0 / Q4_0: every batch size runs avx512_q16.h's 16-row tiles, which sum each output's blocks in one order (as
 * the scalar path): a row's bits depend neither on its batch nor on the thread split. */
static void prep_q(act_t *a, int q4) { prep_q16(a, q4); }
static void q8_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q16_rows(a, wqs, wd, r0, r1, n, out, 0); }
static void q4_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q16_rows(a, wqs, wd, r0, r1, n, out, 1); }

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

/* The Q prep's corrections (bf16 has no prep). */
static void release(act_t *a) {
  free(a->extra);
  a->extra = NULL;
}

const isa_t isa_avx512 = {"avx512", NULL, prep_q, q8_rows, q4_rows, NULL, bf16_rows, release, &dense_avx512, quantize};
