/*
 * N-API entry points of the host plan ops (src/plan-ops.ts documents each): a linear over strided activation views in
 * every weight format, and the fp32 ops of native/dense.c. Every call checks that each view it reads or writes lies
 * inside its typed array, so a wrong offset is a RangeError, never a stray write.
 */
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

const isa_t *weft_isa(int i);
void weft_parallel(void (*fn)(const void *ctx, int t, int nt), const void *ctx, int nt);
void weft_parallel_parts(void (*fn)(const void *ctx, int t, int nt), const void *ctx, int nt, int parts);
void weft_prep_act(const isa_t *I, act_t *a, int q4, int bf16);
void weft_release_act(const isa_t *I, act_t *a);
void weft_run_q(const isa_t *I, int kind, const act_t *a, const void *w, const uint16_t *wd, int n, int nt, float *out);

#define MAXARGS 24
typedef struct {
  napi_env env;
  napi_value argv[MAXARGS];
  size_t argc;
  const char *fn;
  int failed;
} args_t;

static void fail(args_t *A, const char *what) {
  if (A->failed) return;
  A->failed = 1;
  char msg[256];
  snprintf(msg, sizeof msg, "weft_cpu_kernels.%s: %s", A->fn, what);
  napi_throw_range_error(A->env, NULL, msg);
}

static int get_args(napi_env env, napi_callback_info info, args_t *A, const char *fn, size_t want) {
  A->env = env;
  A->fn = fn;
  A->failed = 0;
  A->argc = MAXARGS;
  if (napi_get_cb_info(env, info, &A->argc, A->argv, NULL, NULL) != napi_ok || A->argc != want) {
    fail(A, "wrong number of arguments");
    return 0;
  }
  return 1;
}

static int i32(args_t *A, int i) {
  int32_t v = 0;
  if (napi_get_value_int32(A->env, A->argv[i], &v) != napi_ok) fail(A, "an integer argument is not a number");
  return v;
}

static float f32(args_t *A, int i) {
  double v = 0;
  if (napi_get_value_double(A->env, A->argv[i], &v) != napi_ok) fail(A, "a number argument is not a number");
  return (float)v;
}

static int is_null(args_t *A, int i) {
  napi_valuetype t;
  return napi_typeof(A->env, A->argv[i], &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

/* A typed array of type `want` (or, with want2 ≥ 0, that type instead), its length in elements; NULL after fail(). */
static void *arr(args_t *A, int i, napi_typedarray_type want, int want2, size_t *len, napi_typedarray_type *got) {
  napi_typedarray_type t;
  void *data;
  bool is = false;
  if (napi_is_typedarray(A->env, A->argv[i], &is) != napi_ok || !is ||
      napi_get_typedarray_info(A->env, A->argv[i], &t, len, &data, NULL, NULL) != napi_ok || (t != want && (want2 < 0 || t != (napi_typedarray_type)want2))) {
    fail(A, "a typed array argument has the wrong type");
    return NULL;
  }
  if (got) *got = t;
  return data;
}

/* A view of `rows` rows × `width` columns from `off`, row stride `ld`, inside `len` elements. */
static int view_ok(args_t *A, size_t len, long off, int rows, long ld, int width, const char *what) {
  if (off < 0 || rows < 0 || width < 0 || (rows > 0 && (ld < width || (size_t)(off + (long)(rows - 1) * ld + width) > len))) {
    char m[160];
    snprintf(m, sizeof m, "the %s view (offset %ld, %d rows × %d, stride %ld) is outside its array of %zu", what, off, rows, width, ld, len);
    fail(A, m);
    return 0;
  }
  return 1;
}

static const isa_t *isa_arg(args_t *A, int i) {
  const isa_t *I = weft_isa(i32(A, i));
  if (!I) fail(A, "no such isa");
  return I;
}

/* ---------------------------------------------------------------- linear */

typedef struct {
  const dense_t *D;
  int kn, m, k, n;
  const float *x, *w;
  int ldx;
  float *out;
  int ldo;
} f32job_t;

static void f32_part(const void *ctx, int t, int nt) {
  const f32job_t *j = ctx;
  const int unit = j->kn ? j->D->kn_nr : 4;
  const int per = ((j->n + nt - 1) / nt + unit - 1) / unit * unit;
  const int c0 = t * per, c1 = c0 + per < j->n ? c0 + per : j->n;
  if (c0 >= c1) return;
  if (j->kn) j->D->gemm_f32_kn(j->x, j->ldx, j->m, j->k, j->w, j->n, c0, c1, j->out, j->ldo);
  else j->D->gemm_f32_nk(j->x, j->ldx, j->m, j->k, j->w, c0, c1, j->out, j->ldo);
}

/*
 * linear(isa, threads, kind, m, k, n, x, xoff, ldx, w, wd, out, ooff, ldo, accumulate, bias)
 * kind 0 q8_0 (w Int8Array, wd fp16 scales), 1 q4_0 (Uint8Array), 2 bf16 (Uint16Array), 3 fp32 W [n, k], 4 fp32 W [k, n],
 * 5 q4_0 in q4-tile.h's tile16 layout.
 * out view ← (accumulate ? out : 0) + x · Wᵀ + bias.
 */
static napi_value linear(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "linear", 16)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const int nt = i32(&A, 1), kind = i32(&A, 2), m = i32(&A, 3), k = i32(&A, 4), n = i32(&A, 5);
  const long xoff = i32(&A, 7), ldx = i32(&A, 8), ooff = i32(&A, 12), ldo = i32(&A, 13);
  const int acc = i32(&A, 14);
  if (A.failed || !I) return NULL;
  /* blk: a block format; q: a gemm of addon.c's jobs (kind jk there) */
  const int q4 = kind == 1 || kind == 5, blk = kind <= 1 || kind == 5, q = kind <= 2 || kind == 5, jk = kind == 5 ? 4 : kind;
  if (kind < 0 || kind > 5 || m < 0 || k < 1 || n < 1 || (blk && k % QK)) { fail(&A, "bad kind or shape"); return NULL; }
  size_t lx, lw, ld = 0, lo, lb = 0;
  float *x = arr(&A, 6, napi_float32_array, -1, &lx, NULL);
  const napi_typedarray_type wt = kind == 0 ? napi_int8_array : q4 ? napi_uint8_array : kind == 2 ? napi_uint16_array : napi_float32_array;
  void *w = arr(&A, 9, wt, -1, &lw, NULL);
  uint16_t *wd = blk ? arr(&A, 10, napi_uint16_array, -1, &ld, NULL) : NULL;
  float *out = arr(&A, 11, napi_float32_array, -1, &lo, NULL);
  float *bias = is_null(&A, 15) ? NULL : arr(&A, 15, napi_float32_array, -1, &lb, NULL);
  if (A.failed) return NULL;
  if (lw != (size_t)n * k / (q4 ? 2 : 1) || (blk && ld != (size_t)n * k / QK) || (bias && lb != (size_t)n)) {
    fail(&A, "the weight (or bias) has the wrong length for [n, k]");
    return NULL;
  }
  if (!view_ok(&A, lx, xoff, m, ldx, k, "x") || !view_ok(&A, lo, ooff, m, ldo, n, "out") || m == 0) return NULL;
  /* The kernels read x [m, k] and write out [m, n] contiguously (block formats: x is quantized into a copy anyway). */
  const float *xs = x + xoff;
  float *xtmp = NULL, *otmp = NULL;
  if (q && ldx != k) {
    xtmp = malloc((size_t)m * k * sizeof(float));
    for (int i = 0; i < m; i++) memcpy(xtmp + (size_t)i * k, xs + (size_t)i * ldx, (size_t)k * sizeof(float));
    xs = xtmp;
  }
  const int staged = acc || bias || (q && ldo != n);
  float *dst = staged ? (otmp = malloc((size_t)m * n * sizeof(float))) : out + ooff;
  const int ldd = staged ? n : (int)ldo;
  if (q) {
    act_t a = {m, k, k / QK, xs, NULL, NULL, NULL, NULL, NULL};
    weft_prep_act(I, &a, q4, kind == 2);
    weft_run_q(I, jk, &a, w, wd, n, nt, dst);
    weft_release_act(I, &a);
  } else {
    f32job_t j = {I->dense, kind == 4, m, k, n, xs, w, (int)ldx, dst, ldd};
    weft_parallel(f32_part, &j, nt);
  }
  if (staged) {
    for (int i = 0; i < m; i++) {
      float *o = out + ooff + (size_t)i * ldo;
      const float *s = otmp + (size_t)i * n;
      for (int r = 0; r < n; r++) {
        const float v = bias ? s[r] + bias[r] : s[r];
        o[r] = acc ? o[r] + v : v;
      }
    }
  }
  free(xtmp);
  free(otmp);
  return NULL;
}

/* ---------------------------------------------------------------- elementwise */

/* rmsNorm(isa, x, xoff, ldx, out, ooff, ldo, res|null, roff, ldr, init, rows, width, group, w, eps) */
static napi_value rms_norm(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "rmsNorm", 16)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const long xoff = i32(&A, 2), ldx = i32(&A, 3), ooff = i32(&A, 5), ldo = i32(&A, 6), roff = i32(&A, 8), ldr = i32(&A, 9);
  const int init = i32(&A, 10), rows = i32(&A, 11), width = i32(&A, 12), group = i32(&A, 13);
  const float eps = f32(&A, 15);
  size_t lx, lo, lr = 0, lw;
  float *x = arr(&A, 1, napi_float32_array, -1, &lx, NULL), *out = arr(&A, 4, napi_float32_array, -1, &lo, NULL);
  float *res = is_null(&A, 7) ? NULL : arr(&A, 7, napi_float32_array, -1, &lr, NULL);
  float *w = arr(&A, 14, napi_float32_array, -1, &lw, NULL);
  if (A.failed || !I) return NULL;
  if (group < 1 || width % group || lw != (size_t)group) { fail(&A, "the width must be whole groups and the weight one group long"); return NULL; }
  if (!view_ok(&A, lx, xoff, rows, ldx, width, "x") || !view_ok(&A, lo, ooff, rows, ldo, width, "out") ||
      (res && !view_ok(&A, lr, roff, rows, ldr, width, "residual")))
    return NULL;
  I->dense->rms_norm(x + xoff, (int)ldx, out + ooff, (int)ldo, res ? res + roff : NULL, (int)ldr, init, rows, width, group, w, eps);
  return NULL;
}

/* rotary(isa, x, xoff, ldx, rows, heads, headSize, rotaryDim, neox, cos, sin) */
static napi_value rotary(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "rotary", 11)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const long xoff = i32(&A, 2), ldx = i32(&A, 3);
  const int rows = i32(&A, 4), heads = i32(&A, 5), hs = i32(&A, 6), rot = i32(&A, 7), neox = i32(&A, 8);
  size_t lx, lc, ls;
  float *x = arr(&A, 1, napi_float32_array, -1, &lx, NULL);
  float *c = arr(&A, 9, napi_float32_array, -1, &lc, NULL), *s = arr(&A, 10, napi_float32_array, -1, &ls, NULL);
  if (A.failed || !I) return NULL;
  if (rot < 2 || rot % 2 || rot > hs || lc < (size_t)rows * rot / 2 || ls < (size_t)rows * rot / 2) { fail(&A, "bad rotary dims or cos/sin too short"); return NULL; }
  if (!view_ok(&A, lx, xoff, rows, ldx, heads * hs, "x")) return NULL;
  I->dense->rotary(x + xoff, (int)ldx, rows, heads, hs, rot, neox, c, s);
  return NULL;
}

/* gatedAct(isa, act, x, xoff, ldx, out, ooff, ldo, rows, half) */
static napi_value gated_act(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "gatedAct", 10)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const int act = i32(&A, 1), rows = i32(&A, 8), half = i32(&A, 9);
  const long xoff = i32(&A, 3), ldx = i32(&A, 4), ooff = i32(&A, 6), ldo = i32(&A, 7);
  size_t lx, lo;
  float *x = arr(&A, 2, napi_float32_array, -1, &lx, NULL), *out = arr(&A, 5, napi_float32_array, -1, &lo, NULL);
  if (A.failed || !I) return NULL;
  if (!view_ok(&A, lx, xoff, rows, ldx, 2 * half, "x") || !view_ok(&A, lo, ooff, rows, ldo, half, "out")) return NULL;
  I->dense->gated_act(act, x + xoff, (int)ldx, out + ooff, (int)ldo, rows, half);
  return NULL;
}

/* add(isa, a, aoff, lda, b, boff, ldb, out, ooff, ldo, rows, width) */
static napi_value add(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "add", 12)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const long ao = i32(&A, 2), lda = i32(&A, 3), bo = i32(&A, 5), ldb = i32(&A, 6), oo = i32(&A, 8), ldo = i32(&A, 9);
  const int rows = i32(&A, 10), width = i32(&A, 11);
  size_t la, lb, lo;
  float *a = arr(&A, 1, napi_float32_array, -1, &la, NULL), *b = arr(&A, 4, napi_float32_array, -1, &lb, NULL);
  float *out = arr(&A, 7, napi_float32_array, -1, &lo, NULL);
  if (A.failed || !I) return NULL;
  if (!view_ok(&A, la, ao, rows, lda, width, "a") || !view_ok(&A, lb, bo, rows, ldb, width, "b") || !view_ok(&A, lo, oo, rows, ldo, width, "out")) return NULL;
  I->dense->add(a + ao, (int)lda, b + bo, (int)ldb, out + oo, (int)ldo, rows, width);
  return NULL;
}

/* softcap(isa, x, xoff, ldx, rows, width, cap) */
static napi_value softcap(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "softcap", 7)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const long xoff = i32(&A, 2), ldx = i32(&A, 3);
  const int rows = i32(&A, 4), width = i32(&A, 5);
  const float cap = f32(&A, 6);
  size_t lx;
  float *x = arr(&A, 1, napi_float32_array, -1, &lx, NULL);
  if (A.failed || !I) return NULL;
  if (!(cap > 0)) { fail(&A, "the cap must be positive"); return NULL; }
  if (!view_ok(&A, lx, xoff, rows, ldx, width, "x")) return NULL;
  I->dense->softcap(x + xoff, (int)ldx, rows, width, cap);
  return NULL;
}

/* embed(isa, table, fmt, nrows, dim, ids, vstart, scale, out, ooff, ldo): fmt 0 fp32 [rows, dim], 1 bf16, 2 fp32 [dim, rows] */
static napi_value embed(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "embed", 11)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const int fmt = i32(&A, 2), nrows = i32(&A, 3), dim = i32(&A, 4), vstart = i32(&A, 6);
  const float scale = f32(&A, 7);
  const long ooff = i32(&A, 9), ldo = i32(&A, 10);
  size_t lt, li, lo;
  void *table = arr(&A, 1, fmt == 1 ? napi_uint16_array : napi_float32_array, -1, &lt, NULL);
  int32_t *ids = arr(&A, 5, napi_int32_array, -1, &li, NULL);
  float *out = arr(&A, 8, napi_float32_array, -1, &lo, NULL);
  if (A.failed || !I) return NULL;
  if (fmt < 0 || fmt > 2 || lt != (size_t)nrows * dim) { fail(&A, "the table has the wrong length or format"); return NULL; }
  if (!view_ok(&A, lo, ooff, (int)li, ldo, dim, "out")) return NULL;
  I->dense->embed(table, fmt, nrows, dim, ids, (int)li, vstart, scale, out + ooff, (int)ldo);
  return NULL;
}

/* ---------------------------------------------------------------- paged attention */

typedef struct {
  const dense_t *D;
  const attn_t *a;
  int items;
} attjob_t;

static void att_part(const void *ctx, int t, int nt) {
  const attjob_t *j = ctx;
  const int per = (j->items + nt - 1) / nt, i0 = t * per, i1 = i0 + per < j->items ? i0 + per : j->items;
  if (i0 < i1) j->D->attend(j->a, i0, i1);
}

/*
 * attention(isa, threads, q, qoff, ldq, k, koff, ldk, v|null, voff, ldv, out, ooff, ldo, kcache, vcache|null, seqs, tables,
 *           dims [T, H, Hk, D, Dv, blockSize, window (0: none), numBlocks], scale, cap (0: none))
 * seqs: ATTN_SEQ_FIELDS int32 per sequence (kernels.h). Writes the step's K (and V) rows into their slots, then attends
 * (see AttentionOp in @weft/layers' plan/ops.ts). Every block id it touches is checked against the pool first.
 */
static napi_value attention(napi_env env, napi_callback_info info) {
  args_t A;
  if (!get_args(env, info, &A, "attention", 21)) return NULL;
  const isa_t *I = isa_arg(&A, 0);
  const int nt = i32(&A, 1);
  const long qo = i32(&A, 3), ldq = i32(&A, 4), ko = i32(&A, 6), ldk = i32(&A, 7), vo = i32(&A, 9), ldv = i32(&A, 10), oo = i32(&A, 12), ldo = i32(&A, 13);
  const float scale = f32(&A, 19), cap = f32(&A, 20);
  size_t lq, lk, lv = 0, lo, lkc, lvc = 0, ls, lt, ldims;
  float *q = arr(&A, 2, napi_float32_array, -1, &lq, NULL), *k = arr(&A, 5, napi_float32_array, -1, &lk, NULL);
  float *v = is_null(&A, 8) ? NULL : arr(&A, 8, napi_float32_array, -1, &lv, NULL);
  float *out = arr(&A, 11, napi_float32_array, -1, &lo, NULL), *kc = arr(&A, 14, napi_float32_array, -1, &lkc, NULL);
  float *vc = is_null(&A, 15) ? NULL : arr(&A, 15, napi_float32_array, -1, &lvc, NULL);
  int32_t *seqs = arr(&A, 16, napi_int32_array, -1, &ls, NULL), *tables = arr(&A, 17, napi_int32_array, -1, &lt, NULL);
  int32_t *dims = arr(&A, 18, napi_int32_array, -1, &ldims, NULL);
  if (A.failed || !I) return NULL;
  if (ldims != 8) { fail(&A, "dims must hold 8 integers"); return NULL; }
  const int T = dims[0], H = dims[1], Hk = dims[2], D = dims[3], Dv = dims[4], bs = dims[5], window = dims[6], nblocks = dims[7];
  const int S = (int)(ls / ATTN_SEQ_FIELDS);
  if (T < 0 || H < 1 || Hk < 1 || H % Hk || D < 1 || Dv < 1 || bs < 1 || window < 0 || nblocks < 0 || ls % ATTN_SEQ_FIELDS || (!v) != (!vc) ||
      (!v && Dv > D)) {
    fail(&A, "bad dims (heads, head sizes, block size, window) or v/vcache given without the other");
    return NULL;
  }
  if (lkc != (size_t)nblocks * Hk * bs * D || (vc && lvc != (size_t)nblocks * Hk * bs * Dv)) { fail(&A, "the caches do not hold numBlocks × Hk × blockSize × D"); return NULL; }
  if (!view_ok(&A, lq, qo, T, ldq, H * D, "q") || !view_ok(&A, lk, ko, T, ldk, Hk * D, "k") || (v && !view_ok(&A, lv, vo, T, ldv, Hk * Dv, "v")) ||
      !view_ok(&A, lo, oo, T, ldo, H * Dv, "out"))
    return NULL;
  int32_t *row_seq = malloc(((size_t)T + 1) * sizeof(int32_t));
  int max_keys = 0, next = 0;
  char m[200];
  for (int si = 0; si < S && !A.failed; si++) {
    const int32_t *s = seqs + (size_t)si * ATTN_SEQ_FIELDS;
    const int start = s[ATTN_START], L = s[ATTN_QUERY], ctx = s[ATTN_CONTEXT], toff = s[ATTN_TABLE];
    if (start != next || L < 0 || ctx < 0 || start + L > T) {
      snprintf(m, sizeof m, "sequence %d: rows %d..%d do not continue the step's rows at %d (of %d)", s[ATTN_SEQ_ID], start, start + L, next, T);
      fail(&A, m);
      break;
    }
    next = start + L;
    const int end = ctx + L, need = (end + bs - 1) / bs;
    const int first = window > 0 && ctx - window + 1 > 0 ? ctx - window + 1 : 0;
    if (toff < 0 || (size_t)toff + need > lt) {
      snprintf(m, sizeof m, "sequence %d: %d tokens need %d blocks of %d, its block table is shorter", s[ATTN_SEQ_ID], end, need, bs);
      fail(&A, m);
      break;
    }
    for (int b = first / bs; b < need; b++)
      if (tables[toff + b] < 0 || tables[toff + b] >= nblocks) {
        snprintf(m, sizeof m, "sequence %d: block %d is %d, outside the pool of %d blocks", s[ATTN_SEQ_ID], b, tables[toff + b], nblocks);
        fail(&A, m);
        break;
      }
    for (int i = 0; i < L; i++) row_seq[start + i] = si;
    const int keys = window > 0 && window < end ? window : end;
    if (keys > max_keys) max_keys = keys;
  }
  if (!A.failed && next != T) {
    snprintf(m, sizeof m, "the sequences cover %d rows, the step has %d", next, T);
    fail(&A, m);
  }
  if (A.failed) {
    free(row_seq);
    return NULL;
  }
  /* Every new row is written before any is read: a sequence may read a block another one writes in this step. */
  for (int t = 0; t < T; t++) {
    const int32_t *s = seqs + (size_t)row_seq[t] * ATTN_SEQ_FIELDS;
    const int p = s[ATTN_CONTEXT] + t - s[ATTN_START];
    const size_t blk = (size_t)tables[s[ATTN_TABLE] + p / bs];
    for (int h = 0; h < Hk; h++) {
      const size_t slot = (blk * Hk + h) * bs + p % bs;
      memcpy(kc + slot * D, k + ko + (size_t)t * ldk + (size_t)h * D, (size_t)D * sizeof(float));
      if (vc) memcpy(vc + slot * Dv, v + vo + (size_t)t * ldv + (size_t)h * Dv, (size_t)Dv * sizeof(float));
    }
  }
  attn_t a = {q + qo, NULL, NULL, (int)ldq, 0, 0, out + oo, (int)ldo, kc, vc, seqs, tables, row_seq, T, H, Hk, D, Dv, bs, window, max_keys, scale, cap};
  attjob_t j = {I->dense, &a, T * Hk};
  /* up to 8 parts a thread (decode: one a KV head), so that a thread late to the call (a shared machine) leaves its
   * heads to the others rather than every thread waiting for it */
  const int items = T * Hk, parts = items < 8 * nt ? items : 8 * nt;
  weft_parallel_parts(att_part, &j, nt < items ? nt : items, parts);
  free(row_seq);
  return NULL;
}

napi_status weft_define_plan_ops(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"linear", NULL, linear, NULL, NULL, NULL, napi_enumerable, NULL},
    {"rmsNorm", NULL, rms_norm, NULL, NULL, NULL, napi_enumerable, NULL},
    {"rotary", NULL, rotary, NULL, NULL, NULL, napi_enumerable, NULL},
    {"gatedAct", NULL, gated_act, NULL, NULL, NULL, napi_enumerable, NULL},
    {"add", NULL, add, NULL, NULL, NULL, napi_enumerable, NULL},
    {"softcap", NULL, softcap, NULL, NULL, NULL, napi_enumerable, NULL},
    {"embed", NULL, embed, NULL, NULL, NULL, napi_enumerable, NULL},
    {"attention", NULL, attention, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
