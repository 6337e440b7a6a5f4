/*
 * The fp32 ops of a host plan step (the device plan's host executor): fp32 GEMMs in both weight layouts, RMSNorm
 * with the fused residual add, rotary, the gated activations, add, soft-capping, embedding rows and paged attention.
 * Plain C written so that the compiler vectorises it: this file is compiled once per ISA target (binding.gyp) with
 * that ISA's flags and DENSE_ISA naming its table, so every path gets its own vector code from one source.
 * Strided views throughout: element (i, j) of a view is at base[i·ld + j] (the caller offsets base to the view's
 * first column). Elementwise formulas keep the tfjs path's operation order (HF's), so only the reductions differ
 * from it, by fp32 reassociation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#ifndef DENSE_ISA
#define DENSE_ISA scalar
#endif
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define AI static inline __attribute__((always_inline))

#ifdef __FMA__
#define MADD(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

#if defined(__AVX512F__)
#define KN_NR 32
#else
#define KN_NR 16
#endif

/* ---------------------------------------------------------------- fp32 GEMM, W [k, n] (a LinearWeight's tensor) */

/* GCC vector types keep a tile's accumulators in registers (arrays of floats went to the stack); the tiles
 * contract a·b + c into FMAs (the elementwise ops below stay uncontracted, in the tfjs path's order). */
typedef float vf __attribute__((vector_size(64)));
typedef float vfu __attribute__((vector_size(64), aligned(4)));
#define VL 16
#define LDV(p) (*(const vfu *)(p))
#define FC __attribute__((optimize("fp-contract=fast")))

typedef int32_t vi __attribute__((vector_size(64)));

/* The sum of a vector's lanes, as a tree (a chain of 15 dependent adds cost a short dot product most of its time). */
AI float vsum(vf v) {
  v += __builtin_shuffle(v, (vi){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  v += __builtin_shuffle(v, (vi){4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
  v += __builtin_shuffle(v, (vi){2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
  v += __builtin_shuffle(v, (vi){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  return v[0];
}

/* a · b over n floats (attention's q · k): VL lanes kept apart, then summed. */
AI FC float dot(const float *a, const float *b, int n) {
  vf acc = (vf){0};
  int j = 0;
  for (; j + VL <= n; j += VL) acc += LDV(a + j) * LDV(b + j);
  float s = vsum(acc);
  for (; j < n; j++) s = MADD(a[j], b[j], s);
  return s;
}

/* o[0, n) += p · v[0, n). */
AI FC void axpy(float p, const float *v, float *o, int n) {
  int j = 0;
  const vf pv = (vf){0} + p;
  for (; j + VL <= n; j += VL) {
    vf ov = LDV(o + j);
    ov += pv * LDV(v + j);
    memcpy(o + j, &ov, sizeof ov);
  }
  for (; j < n; j++) o[j] = MADD(p, v[j], o[j]);
}

/*
 * e^x on VL lanes (Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a degree-5 polynomial in r, times 2^n), within 2 ulp
 * of expf (below −87.3 it returns 0, where expf's results are subnormal; above 88.38 it saturates there, as
 * SiLU's σ only needs 1 + e^x to be huge).
 */
AI FC vf vexp(vf x) {
  const vf lo = (vf){0} - 87.3365447505531f, hi = (vf){0} + 88.3762626647949f;
  const vi under = x < lo, over = x > hi; /* clamped by bit selects: fminf/fmaxf stay library calls per lane */
  x = (vf)(((vi)x & ~(under | over)) | ((vi)lo & under) | ((vi)hi & over));
  const vf fx = x * 1.44269504088896341f + 0.5f;
  vi n = __builtin_convertvector(fx, vi); /* toward zero; then floor: one less where that rounded up */
  n += __builtin_convertvector(n, vf) > fx;
  const vf fl = __builtin_convertvector(n, vf);
  x = x - fl * 0.693359375f + fl * 2.12194440e-4f;
  vf y = (vf){0} + 1.9875691500E-4f;
  y = y * x + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * (x * x) + x + 1.0f;
  n = (n + 127) << 23;
  y = y * (vf)n;
  return (vf)((vi)y & ~under);
}

/* p[j] ← e^(p[j] − mx) for j < n; their sum. */
AI FC float exp_shifted(float *p, int n, float mx) {
  vf acc = (vf){0};
  int j = 0;
  for (; j + VL <= n; j += VL) {
    const vf e = vexp(LDV(p + j) - mx);
    memcpy(p + j, &e, sizeof e);
    acc += e;
  }
  float s = vsum(acc);
  for (; j < n; j++) s += p[j] = expf(p[j] - mx);
  return s;
}

/* a·b + c, contracted (an FMA where the ISA has one), as the tiles' accumulations. */
AI FC vf vfma(vf a, vf b, vf c) { return a * b + c; }

/* The lane sums of 16 vectors, as one vector (lane i: Σ v[i]): a butterfly of 15 adds, not 16 reductions. */
AI vf hsum16(const vf *v) {
  vf w[8], x[4], y[2];
  for (int i = 0; i < 8; i++)
    w[i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], (vi){0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}) +
           __builtin_shuffle(v[2 * i], v[2 * i + 1], (vi){8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
  for (int i = 0; i < 4; i++)
    x[i] = __builtin_shuffle(w[2 * i], w[2 * i + 1], (vi){0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27}) +
           __builtin_shuffle(w[2 * i], w[2 * i + 1], (vi){4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31});
  for (int i = 0; i < 2; i++)
    y[i] = __builtin_shuffle(x[2 * i], x[2 * i + 1], (vi){0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29}) +
           __builtin_shuffle(x[2 * i], x[2 * i + 1], (vi){2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31});
  return __builtin_shuffle(y[0], y[1], (vi){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}) +
         __builtin_shuffle(y[0], y[1], (vi){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31});
}

/* q · k for up to 16 keys (rows `k[c]`, D a multiple of VL; missing keys repeat the last), lane c for key c. */
AI FC vf dots16(const float *q, const float *const *k, int D) {
  vf acc[VL];
  for (int c = 0; c < VL; c++) acc[c] = (vf){0};
  for (int d = 0; d < D; d += VL) {
    const vf qv = LDV(q + d);
    for (int c = 0; c < VL; c++) acc[c] += qv * LDV(k[c] + d);
  }
  return hsum16(acc);
}

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

/* ---------------------------------------------------------------- paged attention */

/*
 * Rows × KV heads [i0, i1) of the step: each row's G query heads of KV head g against its sequence's visible keys,
 * walked block by block (one table lookup a block; each key row read once for the G heads sharing it).
 */
static void attend(const attn_t *A, int i0, int i1) {
  const int G = A->H / A->Hk, D = A->D, Dv = A->Dv, bs = A->bs;
  const size_t kw = A->vc ? (size_t)Dv : (size_t)D; /* floats between V rows: V's own, or K's (latent cache) */
  float *p = malloc((size_t)G * (A->max_keys > 0 ? A->max_keys : 1) * sizeof(float));
  float *sum = malloc((size_t)G * sizeof(float));
  size_t *slot = malloc((size_t)(A->max_keys > 0 ? A->max_keys : 1) * sizeof(size_t)); /* each visible key's cache row */
  if (!p || !sum || !slot) {
    free(p);
    free(sum);
    free(slot);
    return;
  }
  for (int item = i0; item < i1; item++) {
    const int t = item / A->Hk, g = item % A->Hk;
    const int32_t *s = A->seqs + (size_t)A->row_seq[t] * ATTN_SEQ_FIELDS;
    const int pos = s[ATTN_CONTEXT] + (t - s[ATTN_START]);
    const int first = A->window > 0 && pos - A->window + 1 > 0 ? pos - A->window + 1 : 0;
    const int n = pos - first + 1;
    const int32_t *table = A->tables + s[ATTN_TABLE];
    const float *q = A->q + (size_t)t * A->ldq + (size_t)g * G * D;
    for (int ps = first, j = 0; ps <= pos;) {
      const int off = ps % bs, cnt = bs - off < pos + 1 - ps ? bs - off : pos + 1 - ps;
      const size_t base = ((size_t)table[ps / bs] * A->Hk + g) * bs + off;
      for (int c = 0; c < cnt; c++) slot[j + c] = base + c;
      ps += cnt;
      j += cnt;
    }
    if (D % VL == 0) {
      /* 16 keys at a time (across blocks), each key row read once for the G heads, their sums in one butterfly */
      const float *kp[VL];
      for (int j0 = 0; j0 < n; j0 += VL) {
        const int cnt = n - j0 < VL ? n - j0 : VL;
        for (int c = 0; c < VL; c++) kp[c] = A->kc + slot[j0 + (c < cnt ? c : cnt - 1)] * D;
        for (int gg = 0; gg < G; gg++) {
          const vf sc = dots16(q + (size_t)gg * D, kp, D) * A->scale;
          memcpy(p + (size_t)gg * n + j0, &sc, (size_t)cnt * sizeof(float));
        }
      }
    } else {
      for (int ps = first, j = 0; ps <= pos;) {
        const int off = ps % bs, cnt = bs - off < pos + 1 - ps ? bs - off : pos + 1 - ps;
        const float *kb = A->kc + (((size_t)table[ps / bs] * A->Hk + g) * bs + off) * D;
        for (int c = 0; c < cnt; c++)
          for (int gg = 0; gg < G; gg++) p[(size_t)gg * n + j + c] = dot(q + (size_t)gg * D, kb + (size_t)c * D, D) * A->scale;
        ps += cnt;
        j += cnt;
      }
    }
    for (int gg = 0; gg < G; gg++) {
      float *pg = p + (size_t)gg * n, mx = -INFINITY;
      if (A->cap > 0)
        for (int j = 0; j < n; j++) pg[j] = tanhf(pg[j] / A->cap) * A->cap;
      for (int j = 0; j < n; j++) mx = pg[j] > mx ? pg[j] : mx;
      sum[gg] = exp_shifted(pg, n, mx);
      float *o = A->out + (size_t)t * A->ldo + (size_t)(g * G + gg) * Dv;
      if (Dv % VL == 0) {
        /* p / Σ in place (the same divisions as one at a time), then each head's output in registers across the keys */
        const float sg = sum[gg];
        for (int j = 0; j < n; j++) pg[j] = pg[j] / sg;
        vf acc[8];
        for (int d0 = 0; d0 < Dv; d0 += 8 * VL) {
          const int nv = (Dv - d0) / VL < 8 ? (Dv - d0) / VL : 8;
          for (int v = 0; v < nv; v++) acc[v] = (vf){0};
          for (int j = 0; j < n; j++) {
            const float *vp = (A->vc ? A->vc + slot[j] * Dv : A->kc + slot[j] * D) + d0;
            const vf pj = (vf){0} + pg[j];
            for (int v = 0; v < nv; v++) acc[v] = vfma(pj, LDV(vp + v * VL), acc[v]);
          }
          memcpy(o + d0, acc, (size_t)nv * sizeof(vf));
        }
      } else {
        for (int d = 0; d < Dv; d++) o[d] = 0;
      }
    }
    if (Dv % VL == 0) continue;
    for (int ps = first, j = 0; ps <= pos;) {
      const int off = ps % bs, cnt = bs - off < pos + 1 - ps ? bs - off : pos + 1 - ps;
      const size_t slot = ((size_t)table[ps / bs] * A->Hk + g) * bs + off;
      const float *vb = A->vc ? A->vc + slot * Dv : A->kc + slot * D;
      for (int c = 0; c < cnt; c++)
        for (int gg = 0; gg < G; gg++)
          axpy(p[(size_t)gg * n + j + c] / sum[gg], vb + c * kw, A->out + (size_t)t * A->ldo + (size_t)(g * G + gg) * Dv, Dv);
      ps += cnt;
      j += cnt;
    }
  }
  free(p);
  free(sum);
  free(slot);
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

const dense_t CAT(dense, DENSE_ISA) = {KN_NR, gemm_f32_kn, gemm_f32_nk, rms_norm, rotary, gated_act, add, softcap, attend, embed};
