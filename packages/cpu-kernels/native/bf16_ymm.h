/*
 * The bf16 tile on ymm registers (AVX2 + FMA), shared by avx2.c (every batch) and avx512.c (m < 4, where from memory
 * two ymm halves read faster on Zen 5 than 512-bit steps): kernels.h's BF16_ORDER, lanes 0-7 (lo) from a chunk's
 * first 16 bf16, 8-15 (hi) from its last 16, each 32-bit word's even bf16 widened by a shift and its odd one by a
 * mask; x in pairs order (a->xp). Static inline, compiled with each including file's ISA flags.
 */
#ifndef WEFT_BF16_YMM_H
#define WEFT_BF16_YMM_H
#include <immintrin.h>
#include <string.h>
#include "kernels.h"

#ifndef AI
#define AI static inline __attribute__((always_inline))
#endif

/* The 8 lanes' sum in BF16_ORDER's tree (lane l += lane l + 4, then + 2, then + 1). */
AI float bf16_hsum8(__m256 s8) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* BF16_ORDER's tail: elements j0..k-1 by FMA in turn. */
AI float bf16_tail(float sum, const float *x, const uint16_t *wr, int j0, int k) {
  for (int j = j0; j < k; j++) {
    uint32_t u = (uint32_t)wr[j] << 16;
    float f;
    memcpy(&f, &u, 4);
    sum = __builtin_fmaf(f, x[j], sum);
  }
  return sum;
}

/* Weight rows [r, r + NR) (NR ≤ 4) × activation rows [i0, i0 + NA) (NA ≤ 3). With pf, the NR rows `ahead` rows on
 * are prefetched a line a row per chunk. */
AI void bf16_ymm_tile(const act_t *a, const uint16_t *w, int r, const int NR, int i0, const int NA, int n, float *out, const int pf,
                      const int ahead) {
  const int k = a->k, kc = k / 32;
  const __m256i odd = _mm256_set1_epi32((int)0xffff0000u);
  __m256 lo[4][3], hi[4][3];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) lo[rr][ii] = hi[rr][ii] = _mm256_setzero_ps();
  for (int c = 0; c < kc; c++) {
    if (pf)
      for (int rr = 0; rr < NR; rr++) _mm_prefetch((const char *)(w + (size_t)(r + ahead + rr) * k + (size_t)c * 32), _MM_HINT_T0);
    for (int rr = 0; rr < NR; rr++) {
      const uint16_t *wp = w + (size_t)(r + rr) * k + (size_t)c * 32;
      const __m256i v0 = _mm256_loadu_si256((const __m256i *)wp), v1 = _mm256_loadu_si256((const __m256i *)(wp + 16));
      const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), o0 = _mm256_castsi256_ps(_mm256_and_si256(v0, odd));
      const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), o1 = _mm256_castsi256_ps(_mm256_and_si256(v1, odd));
      for (int ii = 0; ii < NA; ii++) {
        const float *xq = a->xp + ((size_t)(i0 + ii) * kc + c) * 32;
        lo[rr][ii] = _mm256_fmadd_ps(o0, _mm256_load_ps(xq + 16), _mm256_fmadd_ps(e0, _mm256_load_ps(xq), lo[rr][ii]));
        hi[rr][ii] = _mm256_fmadd_ps(o1, _mm256_load_ps(xq + 24), _mm256_fmadd_ps(e1, _mm256_load_ps(xq + 8), hi[rr][ii]));
      }
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      const float sum = bf16_hsum8(_mm256_add_ps(lo[rr][ii], hi[rr][ii]));
      out[(size_t)(i0 + ii) * n + r + rr] = bf16_tail(sum, a->x + (size_t)(i0 + ii) * k, w + (size_t)(r + rr) * k, kc * 32, k);
    }
}

#endif
