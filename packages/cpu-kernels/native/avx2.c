/*
 * AVX2 path (AVX2, FMA, F16C; no VNNI), as ggml's AVX2 dot products: Q8_0 by |w| · sign(x, w) with
 * vpmaddubsw (no saturation: 127·127·2 < 32767), Q4_0 by the unsigned nibbles with vpmaddubsw and the
 * exact integer correction -8·Σx; a block per ymm, 8 weight rows (reduced to one lane each) × 2 activation rows a tile.
 * bf16 (weight-only): kernels.h's BF16_ORDER, a shift and a mask widen 16 bf16 a ymm.
 */
#include <immintrin.h>
#include <string.h>
#include "kernels.h"

#define AI static inline __attribute__((always_inline))
#include "bf16_ymm.h"

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

/* The 8 rows' integer block dots (v[l]: row l's 8 partial sums) in one ymm, lane l = row l. */
AI __m256i reduce8(const __m256i v[8]) {
  const __m256i u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* Weight rows [r, r + nr) (nr ≤ 8; the missing ones repeat the last) × activation rows [i0, i0 + NA): 8 rows in the
 * lanes of one accumulator, each block's integer dot scaled by d_w·d_x and added in fp32 block after block — the
 * scalar path's order (the same bits), whatever the batch. */
AI void q_tile(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r, int nr, int i0, const int NA, int n, float *out,
               const int q4, const int pf) {
  const int k = a->k, nb = a->nb;
  const size_t wrow = q4 ? (size_t)k / 2 : (size_t)k;
  const int bb = q4 ? 16 : 32;
  const uint8_t *wr[8];
  const uint16_t *dr[8];
  for (int l = 0; l < 8; l++) {
    const int row = r + (l < nr ? l : nr - 1);
    wr[l] = wqs + (size_t)row * wrow;
    dr[l] = wd + (size_t)row * nb;
  }
  __m256 acc[2];
  for (int ii = 0; ii < NA; ii++) acc[ii] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    if (pf && (size_t)b * bb % 64 == 0) prefetch_next(wqs, wrow, wd, r, 8, nb, (size_t)b * bb);
    const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16((short)dr[0][b], (short)dr[1][b], (short)dr[2][b], (short)dr[3][b], (short)dr[4][b],
                                                     (short)dr[5][b], (short)dr[6][b], (short)dr[7][b]));
    for (int ii = 0; ii < NA; ii++) {
      const size_t xb = (size_t)(i0 + ii) * nb + b;
      const int8_t *x = a->qs + xb * QK;
      __m256i v[8];
      for (int l = 0; l < 8; l++) v[l] = block_dot(wr[l] + (size_t)b * bb, x, q4);
      __m256i dot = reduce8(v);
      if (q4) dot = _mm256_add_epi32(dot, _mm256_set1_epi32(-8 * a->sx[xb]));
      acc[ii] = _mm256_add_ps(acc[ii], _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_set1_ps(a->d[xb]))));
    }
  }
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int ii = 0; ii < NA; ii++) _mm256_maskstore_ps(out + (size_t)(i0 + ii) * n + r, keep, acc[ii]);
}

AI void q_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out, const int q4) {
  for (int r = r0; r < r1; r += 8) {
    const int nr = r1 - r < 8 ? r1 - r : 8;
    for (int i0 = 0; i0 < a->m; i0 += 2)
      if (a->m - i0 >= 2) q_tile(a, wqs, wd, r, nr, i0, 2, n, out, q4, nr == 8 && i0 == 0);
      else q_tile(a, wqs, wd, r, nr, i0, 1, n, out, q4, nr == 8 && i0 == 0);
  }
}

static void q8_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q_rows(a, wqs, wd, r0, r1, n, out, 0); }
static void q4_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q_rows(a, wqs, wd, r0, r1, n, out, 1); }

/* bf16 in kernels.h's BF16_ORDER: bf16_ymm.h's tile, the next tile's NR rows prefetched. */
AI void bf16_tile(const act_t *a, const uint16_t *w, int r, const int NR, int i0, const int NA, int n, float *out, const int pf) {
  bf16_ymm_tile(a, w, r, NR, i0, NA, n, out, pf, NR);
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
