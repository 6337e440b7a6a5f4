/* The reference C path: any CPU. Same semantics as src/portable.ts. */
#include <math.h>
#include <string.h>
#include "kernels.h"

static float bf16f(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static int always(void) { return 1; }

static void q8_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) {
  const int k = a->k, nb = a->nb;
  const int8_t *w = (const int8_t *)wqs;
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < a->m; i++) {
      float sum = 0;
      for (int b = 0; b < nb; b++) {
        const int8_t *wb = w + (size_t)r * k + b * QK, *xb = a->qs + (size_t)i * k + b * QK;
        int dot = 0;
        for (int j = 0; j < QK; j++) dot += wb[j] * xb[j];
        sum += (float)dot * (weft_fp16_to_fp32(wd[(size_t)r * nb + b]) * a->d[(size_t)i * nb + b]);
      }
      out[(size_t)i * n + r] = sum;
    }
}

static void q4_rows(const act_t *a, const uint8_t *wqs, const uint16_t *wd, int r0, int r1, int n, float *out) {
  const int k = a->k, nb = a->nb;
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < a->m; i++) {
      float sum = 0;
      for (int b = 0; b < nb; b++) {
        const uint8_t *wb = wqs + ((size_t)r * nb + b) * 16;
        const int8_t *xb = a->qs + (size_t)i * k + b * QK;
        int dot = 0;
        for (int j = 0; j < 16; j++) dot += ((wb[j] & 15) - 8) * xb[j] + ((wb[j] >> 4) - 8) * xb[j + 16];
        sum += (float)dot * (weft_fp16_to_fp32(wd[(size_t)r * nb + b]) * a->d[(size_t)i * nb + b]);
      }
      out[(size_t)i * n + r] = sum;
    }
}

/* bf16 in kernels.h's BF16_ORDER, lane by lane (fmaf: the single rounding of the vector paths' FMAs). */
static void bf16_rows(const act_t *a, const uint16_t *w, int r0, int r1, int n, float *out) {
  const int k = a->k, kc = k / 32;
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < a->m; i++) {
      const float *x = a->x + (size_t)i * k;
      const uint16_t *wr = w + (size_t)r * k;
      float s[16] = {0};
      for (int c = 0; c < kc; c++)
        for (int l = 0; l < 16; l++) {
          s[l] = fmaf(bf16f(wr[c * 32 + 2 * l]), x[c * 32 + 2 * l], s[l]);
          s[l] = fmaf(bf16f(wr[c * 32 + 2 * l + 1]), x[c * 32 + 2 * l + 1], s[l]);
        }
      for (int w2 = 8; w2 >= 1; w2 /= 2)
        for (int l = 0; l < w2; l++) s[l] = s[l] + s[l + w2];
      float sum = s[0];
      for (int j = kc * 32; j < k; j++) sum = fmaf(bf16f(wr[j]), x[j], sum);
      out[(size_t)i * n + r] = sum;
    }
}

const isa_t isa_scalar = {"scalar", always, NULL, q8_rows, q4_rows, NULL, bf16_rows, NULL, &dense_scalar};
