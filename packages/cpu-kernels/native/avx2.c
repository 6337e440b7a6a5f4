/*
 * AVX2 path (AVX2, FMA, F16C; no VNNI), as ggml's AVX2 dot products: Q8_0 by |w| · sign(x, w) with
 * vpmaddubsw (no saturation: 127·127·2 < 32767), Q4_0 by the unsigned nibbles with vpmaddubsw and the
 * exact integer correction -8·Σx; a block per ymm, 4 weight rows × 2 activation rows a tile.
 * bf16 (weight-only): 8 bf16 widened to fp32 by a zero-extend and a shift.
 */
#include <immintrin.h>
#include <string.h>
#include "kernels.h"

#define AI static inline __attribute__((always_inline))

AI __m256i block_dot(const uint8_t *w, const int8_t *x, const int q4) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i xv = _mm256_loadu_si256((const __m256i *)x);
  if (!q4) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)w);
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
    return _mm256_madd_epi16(p, ones);
  }
  __m128i b = _mm_loadu_si128((const __m128i *)w);
  const __m128i m = _mm_set1_epi8(0x0f);
  __m256i wv = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
  return _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
}

/* Prefetch the next tile's rows (the NR rows after this one's) a line a row per line of this tile's k loop, and their
 * scales: each tile otherwise starts NR cold streams, and one core reads far below the memory's rate. */
AI void prefetch_next(const void *w, size_t wrow, const uint16_t *wd, int r, const int NR, int nb, size_t off) {
  const char *next = (const char *)w + (size_t)(r + NR) * wrow + off;
  for (int rr = 0; rr < NR; rr++) _mm_prefetch(next + rr * wrow, _MM_HINT_T0);
  if (wd && off / 64 * 64 < (size_t)NR * nb * 2) _mm_prefetch((const char *)(wd + (size_t)(r + NR) * nb) + off / 64 * 64, _MM_HINT_T0);
}

AI void q_tile(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r, const int NR, int i0, const int NA, int n, float *out,
               const int q4, const int pf) {
  const int k = a->k, nb = a->nb;
  const size_t wrow = q4 ? (size_t)k / 2 : (size_t)k;
  const int bb = q4 ? 16 : 32;
  __m256 acc[4][2];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    float dw[4];
    if (pf && (size_t)b * bb % 64 == 0) prefetch_next(wqs, wrow, wd, r, NR, nb, (size_t)b * bb);
    for (int rr = 0; rr < NR; rr++) dw[rr] = _cvtsh_ss(wd[(size_t)(r + rr) * nb + b]);
    for (int ii = 0; ii < NA; ii++) {
      const size_t xb = (size_t)(i0 + ii) * nb + b;
      const int8_t *x = a->qs + (size_t)(i0 + ii) * k + (size_t)b * QK;
      const float dx = a->d[xb];
      const __m256i corr = q4 ? _mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * a->sx[xb])) : _mm256_setzero_si256();
      for (int rr = 0; rr < NR; rr++) {
        __m256i s = _mm256_add_epi32(block_dot(wqs + (size_t)(r + rr) * wrow + (size_t)b * bb, x, q4), corr);
        acc[rr][ii] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw[rr] * dx), acc[rr][ii]);
      }
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[rr][ii]), _mm256_extractf128_ps(acc[rr][ii], 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      out[(size_t)(i0 + ii) * n + r + rr] = _mm_cvtss_f32(s);
    }
}

#define TILE_NA(NR, q4)                                                                                       \
  for (int i0 = 0; i0 < a->m; i0 += 2) {                                                                      \
    if (a->m - i0 >= 2) q_tile(a, wqs, wd, r, NR, i0, 2, n, out, q4, NR == 4 && i0 == 0); else q_tile(a, wqs, wd, r, NR, i0, 1, n, out, q4, NR == 4 && i0 == 0); \
  }

AI void q_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out, const int q4) {
  int r = r0;
  for (; r + 4 <= r1; r += 4) TILE_NA(4, q4)
  for (; r < r1; r++) TILE_NA(1, q4)
}

static void q8_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q_rows(a, wqs, wd, r0, r1, n, out, 0); }
static void q4_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q_rows(a, wqs, wd, r0, r1, n, out, 1); }

AI void bf16_tile(const act_t *a, const uint16_t *w, int r, const int NR, int i0, const int NA, int n, float *out, const int pf) {
  const int k = a->k, kc = k / 8;
  __m256 acc[4][2];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = _mm256_setzero_ps();
  for (int c = 0; c < kc; c++) {
    __m256 wf[4];
    if (pf && c % 4 == 0) prefetch_next(w, (size_t)k * 2, NULL, r, NR, 0, (size_t)c * 16);
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

#define BF16_NA(NR)                                                                                      \
  for (int i0 = 0; i0 < a->m; i0 += 2) {                                                                 \
    if (a->m - i0 >= 2) bf16_tile(a, w, r, NR, i0, 2, n, out, NR == 4 && i0 == 0); else bf16_tile(a, w, r, NR, i0, 1, n, out, NR == 4 && i0 == 0); \
  }

static void bf16_rows(const act_t *a, const uint16_t *w, int r0, int r1, int n, float *out) {
  int r = r0;
  for (; r + 4 <= r1; r += 4) BF16_NA(4)
  for (; r < r1; r++) BF16_NA(1)
}

const isa_t isa_avx2 = {"avx2", NULL, NULL, q8_rows, q4_rows, NULL, bf16_rows, NULL, &dense_avx2};
