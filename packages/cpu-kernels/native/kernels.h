/* Shared declarations of the CPU kernels: activations prepared once per call, one set of row kernels per ISA. */
#ifndef WEFT_KERNELS_H
#define WEFT_KERNELS_H
#include <stddef.h>
#include <stdint.h>

#define QK 32

/* The activations of one call: x [m, k]; for the block formats also x quantized to Q8_0 blocks (a8). */
typedef struct {
  int m, k, nb;
  const float *x;
  int8_t *qs;   /* m*k */
  float *d;     /* m*nb, the fp16-rounded scales */
  int32_t *sx;  /* m*nb, the sum of each block's qs (for the unsigned-operand corrections) */
  void *extra;  /* an ISA's own layout of the above, made by its prep */
  float *xp;    /* bf16 gemms: x in BF16_ORDER's pairs, per row and chunk of 32 the 16 even elements then the 16 odd */
} act_t;

typedef void (*q_rows_fn)(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out);
/* BF16_ORDER, the one order every bf16 path sums out[i, r] = Σ_j x[i, j]·w[r, j] in (weight-only: x stays fp32), so a
 * row's bits depend neither on its batch nor on the path: 16 lanes; lane l takes the pair (2l, 2l + 1) of each chunk
 * of 32 elements, chunk after chunk: s_l = fma(w[32c + 2l], x[32c + 2l], s_l), then fma(w[32c + 2l + 1], ...). (A
 * 32-bit word of two bf16 is the odd one's fp32 once masked, the even one's once shifted: two cheap operations widen
 * 32 weights, in every vector width.) Then s_l += s_{l+8} (l < 8), s_l += s_{l+4} (l < 4), s_l += s_{l+2}, s_0 += s_1;
 * then the k % 32 last elements, fma in turn. (src/portable.ts emulates the FMAs exactly.) */
typedef void (*bf16_rows_fn)(const act_t *a, const uint16_t *w, int r0, int r1, int n, float *out);

/* Paged attention of one layer over a step (native/dense.c `attend`): the step's rows × KV heads are the work items. */
enum { ATTN_SEQ_ID, ATTN_START, ATTN_QUERY, ATTN_CONTEXT, ATTN_TABLE, ATTN_SEQ_FIELDS }; /* per sequence, in `seqs` */
typedef struct {
  const float *q, *k, *v; /* views (offset to their first column); v NULL with a latent cache (V = K's prefix) */
  int ldq, ldk, ldv;
  float *out;
  int ldo;
  float *kc, *vc;         /* the layer's cache [block, Hk, bs, D] / [block, Hk, bs, Dv]; vc NULL with a latent cache */
  const int32_t *seqs;    /* S × ATTN_SEQ_FIELDS */
  const int32_t *tables;  /* every sequence's block table, back to back (ATTN_TABLE: where each starts) */
  const int32_t *row_seq; /* T: the sequence of each row */
  int T, H, Hk, D, Dv, bs, window, max_keys;
  float scale, cap;       /* cap 0: no soft cap */
} attn_t;

/* The fp32 ops, one table per ISA (native/dense.c compiled with each ISA's flags). */
typedef struct {
  int kn_nr; /* gemm_f32_kn's column tile: a thread's columns start at a multiple of it */
  void (*gemm_f32_kn)(const float *x, int ldx, int m, int k, const float *w, int n, int c0, int c1, float *out, int ldo);
  void (*gemm_f32_nk)(const float *x, int ldx, int m, int k, const float *w, int r0, int r1, float *out, int ldo);
  void (*rms_norm)(const float *x, int ldx, float *out, int ldo, float *res, int ldr, int init, int rows, int width, int group,
                   const float *w, float eps);
  void (*rotary)(float *x, int ldx, int rows, int heads, int head_size, int rot, int neox, const float *cos_t, const float *sin_t);
  void (*gated_act)(int act, const float *x, int ldx, float *out, int ldo, int rows, int half);
  void (*add)(const float *a, int lda, const float *b, int ldb, float *out, int ldo, int rows, int width);
  void (*softcap)(float *x, int ldx, int rows, int width, float cap);
  void (*attend)(const attn_t *a, int i0, int i1);
  void (*embed)(const void *table, int fmt, int nrows, int dim, const int32_t *ids, int T, int vstart, float scale, float *out, int ldo);
} dense_t;

extern const dense_t dense_avx512, dense_avx2, dense_scalar;

typedef struct {
  const char *name;
  int (*supported)(void);
  void (*prep_q)(act_t *a, int q4); /* may be NULL */
  q_rows_fn q8_0, q4_0;
  void (*prep_bf16)(act_t *a);      /* may be NULL */
  bf16_rows_fn bf16;
  void (*release)(act_t *a);        /* frees what a prep made; may be NULL */
  const dense_t *dense;
  void (*quantize)(act_t *a);       /* x → qs, d, sx bit for bit as addon.c's quantize_act, faster; may be NULL */
  q_rows_fn q4_0_tile16;            /* Q4_0 in q4-tile.h's tile16 layout (r0 a multiple of 16); NULL: addon.c untiles for q4_0 */
} isa_t;

extern const isa_t isa_avx512, isa_avx2, isa_scalar;

float weft_fp16_to_fp32(uint16_t h);
uint16_t weft_fp32_to_fp16(float f);

#endif
