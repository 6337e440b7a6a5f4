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
} act_t;

typedef void (*q_rows_fn)(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out);
typedef void (*bf16_rows_fn)(const act_t *a, const uint16_t *w, int r0, int r1, int n, float *out);

typedef struct {
  const char *name;
  int (*supported)(void);
  void (*prep_q)(act_t *a, int q4); /* may be NULL */
  q_rows_fn q8_0, q4_0;
  void (*prep_bf16)(act_t *a);      /* may be NULL */
  bf16_rows_fn bf16;
  void (*release)(act_t *a);        /* frees what a prep made; may be NULL */
} isa_t;

extern const isa_t isa_avx512, isa_avx2, isa_scalar;

float weft_fp16_to_fp32(uint16_t h);
uint16_t weft_fp32_to_fp16(float f);

#endif
