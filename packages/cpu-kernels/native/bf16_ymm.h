/*
 * bf16 on ymm registers (AVX2 + FMA): kernels.h's BF16_ORDER, lanes 0-7 (lo) from a chunk's first 16 bf16, 8-15 (hi)
 * from its last 16, each 32-bit word's even bf16 widened by a shift and its odd one by a mask; x in pairs order
 * (a->xp). bf16_ymm_tile: avx2.c's tile (every batch); bf16_stagger_rows: avx512.c's decode (m < 4, where from
 * memory two ymm halves read faster on Zen 5 than 512-bit steps). Static inline, compiled with each including file's
 * ISA flags.
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

/* Decode (few activation rows) with two weight rows in flight and still one sequential stream: BF16_ORDER is a chain of 2 FMAs a
 * chunk in each lane, so one row at a time waits on the FMA latency (~37 GB/s a core cache-resident); two rows at the
 * same column (two tiles' rows) read two streams 4 KB apart, which measured slower from memory. Here row r's second
 * half runs beside row r + 1's first half: each lane still sums its row chunk after chunk, and the two rows' chunks
 * lie k bytes (half a row of bf16) apart in one sweep of memory. With pf, the rows `ahead` rows on are prefetched
 * at the same places. */
AI void bf16_chunk(const act_t *a, const uint16_t *wr, int c, const int NA, __m256 *lo, __m256 *hi) {
  const int kc = a->k / 32;
  const __m256i odd = _mm256_set1_epi32((int)0xffff0000u);
  const uint16_t *wp = wr + (size_t)c * 32;
  const __m256i v0 = _mm256_loadu_si256((const __m256i *)wp), v1 = _mm256_loadu_si256((const __m256i *)(wp + 16));
  const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), o0 = _mm256_castsi256_ps(_mm256_and_si256(v0, odd));
  const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), o1 = _mm256_castsi256_ps(_mm256_and_si256(v1, odd));
  for (int ii = 0; ii < NA; ii++) {
    const float *xq = a->xp + ((size_t)ii * kc + c) * 32;
    lo[ii] = _mm256_fmadd_ps(o0, _mm256_load_ps(xq + 16), _mm256_fmadd_ps(e0, _mm256_load_ps(xq), lo[ii]));
    hi[ii] = _mm256_fmadd_ps(o1, _mm256_load_ps(xq + 24), _mm256_fmadd_ps(e1, _mm256_load_ps(xq + 8), hi[ii]));
  }
}

/* Row r's chunks from h on (then its sum, out), beside row r + 1's first h chunks (when `next`; into nlo / nhi). */
AI void bf16_stagger_step(const act_t *a, const uint16_t *w, int r, const int NA, int n, float *out, const int ahead, int next,
                          __m256 *lo, __m256 *hi, __m256 *nlo, __m256 *nhi) {
  const int k = a->k, kc = k / 32, h = kc / 2;
  const uint16_t *wr = w + (size_t)r * k, *wn = wr + k;
  for (int ii = 0; ii < NA; ii++) nlo[ii] = nhi[ii] = _mm256_setzero_ps();
  int t = 0;
  if (next)
    for (; t < h; t++) {
      _mm_prefetch((const char *)(wr + (size_t)ahead * k + (size_t)(h + t) * 32), _MM_HINT_T0);
      _mm_prefetch((const char *)(wn + (size_t)ahead * k + (size_t)t * 32), _MM_HINT_T0);
      bf16_chunk(a, wr, h + t, NA, lo, hi);
      bf16_chunk(a, wn, t, NA, nlo, nhi);
    }
  for (; t < kc - h; t++) {
    _mm_prefetch((const char *)(wr + (size_t)ahead * k + (size_t)(h + t) * 32), _MM_HINT_T0);
    bf16_chunk(a, wr, h + t, NA, lo, hi);
  }
  for (int ii = 0; ii < NA; ii++)
    out[(size_t)ii * n + r] = bf16_tail(bf16_hsum8(_mm256_add_ps(lo[ii], hi[ii])), a->x + (size_t)ii * k, wr, kc * 32, k);
}

/* Rows [r0, r1) × the NA (< 4) activation rows, two rows in flight (above). */
AI void bf16_stagger_rows(const act_t *a, const uint16_t *w, int r0, int r1, const int NA, int n, float *out, const int ahead) {
  const int k = a->k, h = k / 32 / 2;
  __m256 alo[3], ahi[3], blo[3], bhi[3];
  for (int ii = 0; ii < NA; ii++) alo[ii] = ahi[ii] = _mm256_setzero_ps();
  for (int c = 0; c < h; c++) {
    _mm_prefetch((const char *)(w + (size_t)(r0 + ahead) * k + (size_t)c * 32), _MM_HINT_T0);
    bf16_chunk(a, w + (size_t)r0 * k, c, NA, alo, ahi);
  }
  for (int r = r0; r < r1; r += 2) {
    bf16_stagger_step(a, w, r, NA, n, out, ahead, r + 1 < r1, alo, ahi, blo, bhi);
    if (r + 1 < r1) bf16_stagger_step(a, w, r + 1, NA, n, out, ahead, r + 2 < r1, blo, bhi, alo, ahi);
  }
}

#endif
