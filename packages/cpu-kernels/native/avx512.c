/*
 * AVX-512 path (F, BW, VL, DQ, VNNI): compiled with those flags, called only when the CPU has them.
 * Q8_0 / Q4_0 × Q8_0 activations: vpdpbusd (u8 × s8) in avx512_q16.h's 16-row tiles. Q8_0 weights are made
 * unsigned by xor 0x80 (w + 128) and Q4_0 nibbles are unsigned already (q, value q - 8); the offsets come back
 * exactly as integer corrections -128·Σx / -8·Σx. Each block's integer dot is then scaled by d_w·d_x and summed in
 * fp32 block after block (the scalar path's order, for every batch size).
 * bf16 (weight-only): bf16 widened to fp32 by a shift (even elements) and a mask (odd); x fp32 as it is; kernels.h's
 * BF16_ORDER.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#define AI static inline __attribute__((always_inline))
#include "avx512_q16.h"
#include "bf16_ymm.h"

/* Q8_0 / Q4_0: every batch size runs avx512_q16.h's 16-row tiles, which sum each output's blocks in one order (as
 * the scalar path): a row's bits depend neither on its batch nor on the thread split. */
static void prep_q(act_t *a, int q4) { prep_q16(a, q4); }
static void q8_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q16_rows(a, wqs, wd, r0, r1, n, out, 0, 0); }
static void q4_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q16_rows(a, wqs, wd, r0, r1, n, out, 1, 0); }
static void q4_tile16_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) { q16_rows(a, wqs, wd, r0, r1, n, out, 1, 1); }

/* bf16 (weight-only, x fp32 as it is) in kernels.h's BF16_ORDER, whatever the tile or batch: 32 bf16 of a row are one
 * 64-byte load, its 16 even elements widened by a shift, its 16 odd ones by a mask (fewer operations than zero-extends
 * and shifts: 7-9% more GFLOP/s in 4 × 4 tiles, measured in CPU time); x comes in pairs order (a->xp). Decode (m < 4)
 * runs the same lanes as two ymm halves: from memory that reads faster on Zen 5 than 512-bit steps at m = 1-2. */
AI void bf16_tile(const act_t *a, const uint16_t *w, int r, const int NR, int i0, const int NA, int n, float *out, const int pf) {
  const int k = a->k, kc = k / 32;
  const __m512i odd = _mm512_set1_epi32((int)0xffff0000u);
  __m512 acc[4][4];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = _mm512_setzero_ps();
  for (int c = 0; c < kc; c++) {
    if (pf)
      for (int rr = 0; rr < NR; rr++) _mm_prefetch((const char *)(w + (size_t)(r + NR + rr) * k + (size_t)c * 32), _MM_HINT_T0);
    for (int rr = 0; rr < NR; rr++) {
      const __m512i v = _mm512_loadu_si512(w + (size_t)(r + rr) * k + (size_t)c * 32);
      const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), wo = _mm512_castsi512_ps(_mm512_and_si512(v, odd));
      for (int ii = 0; ii < NA; ii++) {
        const float *xq = a->xp + ((size_t)(i0 + ii) * kc + c) * 32;
        acc[rr][ii] = _mm512_fmadd_ps(wo, _mm512_load_ps(xq + 16), _mm512_fmadd_ps(we, _mm512_load_ps(xq), acc[rr][ii]));
      }
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      const __m512 v = acc[rr][ii];
      const float sum = bf16_hsum8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
      out[(size_t)(i0 + ii) * n + r + rr] = bf16_tail(sum, a->x + (size_t)(i0 + ii) * k, w + (size_t)(r + rr) * k, kc * 32, k);
    }
}

#define BF16_GROUP_BYTES (128 * 1024)
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

/* m < 4: lanes 0-7 (lo) from a chunk's first 16 bf16, 8-15 (hi) from its last 16. One weight row a tile, so that
 * the rows (contiguous) are one sequential stream, with the row BF16_AHEAD rows on prefetched a line at a time: at
 * m = 1 that reads 34-38 GB/s a core where tiles of 4 rows (4 streams 4 KB apart, the next tile prefetched) read
 * 23-26, and 2 threads gain alike (A/B in one process, TinyLlama gate_up from memory, load 6-7; 2- and 8-row tiles
 * and 1-32 rows ahead tried: 16 and 32 best, 8 ~10% slower). */
#define BF16_AHEAD 16
AI void bf16_tile8(const act_t *a, const uint16_t *w, int r, const int NR, int i0, const int NA, int n, float *out, const int pf) {
  bf16_ymm_tile(a, w, r, NR, i0, NA, n, out, pf, BF16_AHEAD);
}

#define BF16_8(NR)                                                                                  \
  switch (a->m) {                                                                                   \
    case 3: bf16_tile8(a, w, r, NR, 0, 3, n, out, 1); break;                                        \
    case 2: bf16_tile8(a, w, r, NR, 0, 2, n, out, 1); break;                                        \
    default: bf16_tile8(a, w, r, NR, 0, 1, n, out, 1); break;                                 \
  }

static void bf16_rows(const act_t *a, const uint16_t *w, int r0, int r1, int n, float *out) {
  int r = r0;
  if (a->m < 4) {
    for (; r < r1; r++) BF16_8(1)
    return;
  }
  /* Batches: groups of 4-row weight tiles about BF16_GROUP_BYTES of weights (8 tiles at k = 2048, 2 at k = 5632), each
   * activation tile over the whole group, so that an activation tile is read once per group from L2 rather than once
   * per weight tile (CPU time, 1 thread, m = 64-128: +12% at k = 2048, +24-29% at k = 5632; groups of 64 KB, 192 KB
   * and 256 KB measured too). */
  int G = BF16_GROUP_BYTES / (8 * a->k);
  G = G < 1 ? 1 : G > 16 ? 16 : G;
  for (; r + 4 * G <= r1; r += 4 * G)
    for (int i0 = 0; i0 < a->m; i0 += 4)
      for (int g = 0; g < G; g++) {
        const int rg = r + 4 * g, pf = i0 == 0;
        switch (a->m - i0 >= 4 ? 4 : a->m - i0) {
          case 4: bf16_tile(a, w, rg, 4, i0, 4, n, out, pf); break;
          case 3: bf16_tile(a, w, rg, 4, i0, 3, n, out, pf); break;
          case 2: bf16_tile(a, w, rg, 4, i0, 2, n, out, pf); break;
          default: bf16_tile(a, w, rg, 4, i0, 1, n, out, pf); break;
        }
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

const isa_t isa_avx512 = {"avx512", NULL, prep_q, q8_rows, q4_rows, NULL, bf16_rows, release, &dense_avx512, quantize, q4_tile16_rows};
