/*
 * The fp32 ops of a host plan step (the device plan's host executor): fp32 GEMMs in both weight layouts, RMSNorm
 * with the fused residual add, rotary, the gated activations, add, soft-capping, embedding rows and paged attention.
 * Plain C on GCC vector types (vec.h): this file and attention.c are compiled once per ISA target (binding.gyp) with
 * that ISA's flags and DENSE_ISA naming its table, so every path gets its own vector code from one source.
 * Strided views throughout: element (i, j) of a view is at base[i·ld + j] (the caller offsets base to the view's
 * first column). Elementwise formulas keep the tfjs path's operation order (HF's), so only the reductions differ
 * from it, by fp32 reassociation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "vec.h"

void CAT(attend, DENSE_ISA)(const attn_t *A, int i0, int i1); /* attention.c */

#if defined(__AVX512F__)
#define KN_NR 32
#else
#define KN_NR 16
#endif

/* ---------------------------------------------------------------- fp32 GEMM, W [k, n] (a LinearWeight's tensor) */

#define KN_V (KN_NR / VL)
AI FC void kn_tile(const float *x, int ldx, const int MR, int k, const float *w, int n, int c, float *out, int ldo) {
  vf acc[4][KN_V];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < KN_V; v++) acc[i][v] = (vf){0};
  for (int j = 0; j < k; j++) {
    const float *wr = w + (size_t)j * n + c;
    vf wv[KN_V];
    for (int v = 0; v < KN_V; v++) wv[v] = LDV(wr + v * VL);
    for (int i = 0; i < MR; i++) {
      const vf xv = (vf){0} + x[(size_t)i * ldx + j];
      for (int v = 0; v < KN_V; v++) acc[i][v] += xv * wv[v];
    }
  }
  for (int i = 0; i < MR; i++) memcpy(out + (size_t)i * ldo + c, acc[i], sizeof acc[i]);
}

/* Columns [c0, c1) of out[m, ·] = x[m, k] · W[k, n]; c0 a multiple of KN_NR. */
static void gemm_f32_kn(const float *x, int ldx, int m, int k, const float *w, int n, int c0, int c1, float *out, int ldo) {
  int c = c0;
  for (; c + KN_NR <= c1; c += KN_NR)
    for (int i = 0; i < m; i += 4) {
      const float *xi = x + (size_t)i * ldx;
      float *oi = out + (size_t)i * ldo;
      switch (m - i >= 4 ? 4 : m - i) {
        case 4: kn_tile(xi, ldx, 4, k, w, n, c, oi, ldo); break;
        case 3: kn_tile(xi, ldx, 3, k, w, n, c, oi, ldo); break;
        case 2: kn_tile(xi, ldx, 2, k, w, n, c, oi, ldo); break;
        default: kn_tile(xi, ldx, 1, k, w, n, c, oi, ldo); break;
      }
    }
  if (c < c1)
    for (int i = 0; i < m; i++) {
      float acc[KN_NR] = {0};
      for (int j = 0; j < k; j++)
        for (int l = 0; l < c1 - c; l++) acc[l] = MADD(x[(size_t)i * ldx + j], w[(size_t)j * n + c + l], acc[l]);
      memcpy(out + (size_t)i * ldo + c, acc, (size_t)(c1 - c) * sizeof(float));
    }
}

/* ---------------------------------------------------------------- fp32 GEMM, W [n, k] (an embedding, a tied head) */

AI FC void nk_tile(const float *x, int ldx, const int NA, int k, const float *w, int r, const int NR, float *out, int ldo) {
  vf acc[4][4];
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) acc[rr][ii] = (vf){0};
  int j = 0;
  for (; j + VL <= k; j += VL) {
    vf xv[4];
    for (int ii = 0; ii < NA; ii++) xv[ii] = LDV(x + (size_t)ii * ldx + j);
    for (int rr = 0; rr < NR; rr++) {
      const vf wv = LDV(w + (size_t)(r + rr) * k + j);
      for (int ii = 0; ii < NA; ii++) acc[rr][ii] += xv[ii] * wv;
    }
  }
  for (int rr = 0; rr < NR; rr++)
    for (int ii = 0; ii < NA; ii++) {
      float s = vsum(acc[rr][ii]);
      for (int jj = j; jj < k; jj++) s = MADD(x[(size_t)ii * ldx + jj], w[(size_t)(r + rr) * k + jj], s);
      out[(size_t)ii * ldo + r + rr] = s;
    }
}

#define NK_NA(NR)                                                                                         \
  for (int i = 0; i < m; i += 4) {                                                                        \
    const float *xi = x + (size_t)i * ldx;                                                                \
    float *oi = out + (size_t)i * ldo;                                                                    \
    switch (m - i >= 4 ? 4 : m - i) {                                                                     \
      case 4: nk_tile(xi, ldx, 4, k, w, r, NR, oi, ldo); break;                                           \
      case 3: nk_tile(xi, ldx, 3, k, w, r, NR, oi, ldo); break;                                           \
      case 2: nk_tile(xi, ldx, 2, k, w, r, NR, oi, ldo); break;                                           \
      default: nk_tile(xi, ldx, 1, k, w, r, NR, oi, ldo); break;                                          \
    }                                                                                                     \
  }

/* Columns (weight rows) [r0, r1) of out[m, ·] = x[m, k] · Wᵀ, W [n, k]. */
static void gemm_f32_nk(const float *x, int ldx, int m, int k, const float *w, int r0, int r1, float *out, int ldo) {
  int r = r0;
  for (; r + 4 <= r1; r += 4) NK_NA(4)
  for (; r < r1; r++) NK_NA(1)
}

/* ---------------------------------------------------------------- norms and elementwise ops */

/*
 * RMSNorm over groups of `group` columns, HF's order: x · (1/√(mean(x²) + eps)), then weight times that. With res:
 * res ← x + res (res ← x when init) first, and the norm of the new res goes to out (out may be x).
 */
static void rms_norm(const float *x, int ldx, float *out, int ldo, float *res, int ldr, int init, int rows, int width, int group,
                     const float *w, float eps) {
  for (int r = 0; r < rows; r++) {
    const float *src = x + (size_t)r * ldx;
    if (res) {
      float *rr = res + (size_t)r * ldr;
      if (init) memmove(rr, src, (size_t)width * sizeof(float));
      else for (int j = 0; j < width; j++) rr[j] = src[j] + rr[j];
      src = rr;
    }
    float *o = out + (size_t)r * ldo;
    for (int g = 0; g < width; g += group) {
      vf acc = (vf){0};
      int j = 0;
      for (; j + VL <= group; j += VL) {
        const vf v = LDV(src + g + j);
        acc += v * v;
      }
      float ss = vsum(acc);
      for (; j < group; j++) ss += src[g + j] * src[g + j];
      const float inv = 1.0f / sqrtf(ss / (float)group + eps);
      for (int jj = 0; jj < group; jj++) o[g + jj] = w[jj] * (src[g + jj] * inv);
    }
  }
}

/* In place on `heads` heads of head_size columns: the first rot of each rotate by cos/sin [rows, rot/2]. */
static void rotary(float *x, int ldx, int rows, int heads, int head_size, int rot, int neox, const float *cos_t, const float *sin_t) {
  const int half = rot / 2;
  for (int r = 0; r < rows; r++) {
    const float *c = cos_t + (size_t)r * half, *s = sin_t + (size_t)r * half;
    for (int h = 0; h < heads; h++) {
      float *b = x + (size_t)r * ldx + (size_t)h * head_size;
      if (neox) {
        for (int i = 0; i < half; i++) {
          const float x1 = b[i], x2 = b[i + half];
          b[i] = x1 * c[i] - x2 * s[i];
          b[i + half] = x2 * c[i] + x1 * s[i];
        }
      } else {
        for (int i = 0; i < half; i++) {
          const float e = b[2 * i], o = b[2 * i + 1];
          b[2 * i] = e * c[i] - o * s[i];
          b[2 * i + 1] = o * c[i] + e * s[i];
        }
      }
    }
  }
}

/* out = act(gate) · up, x = gate | up (half columns each); act 0 SiLU (g · σ(g)), 1 GELU-tanh (torch's). */
static void gated_act(int act, const float *x, int ldx, float *out, int ldo, int rows, int half) {
  const float k0 = 0.7978845608028654f; /* √(2/π) */
  for (int r = 0; r < rows; r++) {
    const float *g = x + (size_t)r * ldx, *u = g + half;
    float *o = out + (size_t)r * ldo;
    if (act == 0) {
      int j = 0;
      for (; j + VL <= half; j += VL) {
        const vf gv = LDV(g + j);
        const vf r = (gv * (1.0f / (1.0f + vexp(-gv)))) * LDV(u + j);
        memcpy(o + j, &r, sizeof r);
      }
      for (; j < half; j++) o[j] = (g[j] * (1.0f / (1.0f + expf(-g[j])))) * u[j];
    } else {
      /* 0.5·v·(1 + tanh(z)) = v·σ(2z): the same function through the vector exp (tanhf is a call per element) */
      int j = 0;
      for (; j + VL <= half; j += VL) {
        const vf v = LDV(g + j), inner = k0 * (v + 0.044715f * (v * (v * v)));
        const vf r = (v / (1.0f + vexp(-2.0f * inner))) * LDV(u + j);
        memcpy(o + j, &r, sizeof r);
      }
      for (; j < half; j++) {
        const float v = g[j], inner = k0 * (v + 0.044715f * (v * (v * v)));
        o[j] = ((0.5f * v) * (1.0f + tanhf(inner))) * u[j];
      }
    }
  }
}

static void add(const float *a, int lda, const float *b, int ldb, float *out, int ldo, int rows, int width) {
  for (int r = 0; r < rows; r++) {
    const float *ar = a + (size_t)r * lda, *br = b + (size_t)r * ldb;
    float *o = out + (size_t)r * ldo;
    for (int j = 0; j < width; j++) o[j] = ar[j] + br[j];
  }
}

static void softcap(float *x, int ldx, int rows, int width, float cap) {
  for (int r = 0; r < rows; r++) {
    float *o = x + (size_t)r * ldx;
    for (int j = 0; j < width; j++) o[j] = tanhf(o[j] / cap) * cap;
  }
}

/* ---------------------------------------------------------------- embedding rows */

/* out[t] = table row (ids[t] − vstart) · scale, zero rows for ids outside [vstart, vstart + nrows). fmt: 0 fp32 [rows, dim],
 * 1 bf16 [rows, dim], 2 fp32 [dim, rows] (a LinearWeight's tensor). */
static void embed(const void *table, int fmt, int nrows, int dim, const int32_t *ids, int T, int vstart, float scale, float *out, int ldo) {
  for (int t = 0; t < T; t++) {
    float *o = out + (size_t)t * ldo;
    const int r = ids[t] - vstart;
    if (r < 0 || r >= nrows) {
      memset(o, 0, (size_t)dim * sizeof(float));
      continue;
    }
    if (fmt == 1) {
      const uint16_t *src = (const uint16_t *)table + (size_t)r * dim;
      for (int j = 0; j < dim; j++) {
        uint32_t u = (uint32_t)src[j] << 16;
        float f;
        memcpy(&f, &u, 4);
        o[j] = f * scale;
      }
    } else if (fmt == 0) {
      const float *src = (const float *)table + (size_t)r * dim;
      for (int j = 0; j < dim; j++) o[j] = src[j] * scale;
    } else {
      const float *src = (const float *)table + r;
      for (int j = 0; j < dim; j++) o[j] = src[(size_t)j * nrows] * scale;
    }
  }
}

const dense_t CAT(dense, DENSE_ISA) = {KN_NR, gemm_f32_kn, gemm_f32_nk, rms_norm, rotary, gated_act, add, softcap, CAT(attend, DENSE_ISA), embed};
