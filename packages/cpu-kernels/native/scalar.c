/* The reference C path: any CPU. Same semantics as src/portable.ts. */
#include <string.h>
#include "kernels.h"

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

static void bf16_rows(const act_t *a, const uint16_t *w, int r0, int r1, int n, float *out) {
  const int k = a->k;
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < a->m; i++) {
      const float *x = a->x + (size_t)i * k;
      const uint16_t *wr = w + (size_t)r * k;
      float s[4] = {0, 0, 0, 0};
      int j = 0;
      for (; j + 4 <= k; j += 4)
        for (int t = 0; t < 4; t++) {
          uint32_t u = (uint32_t)wr[j + t] << 16;
          float f;
          memcpy(&f, &u, 4);
          s[t] += x[j + t] * f;
        }
      for (; j < k; j++) {
        uint32_t u = (uint32_t)wr[j] << 16;
        float f;
        memcpy(&f, &u, 4);
        s[0] += x[j] * f;
      }
      out[(size_t)i * n + r] = (s[0] + s[1]) + (s[2] + s[3]);
    }
}

const isa_t isa_scalar = {"scalar", always, NULL, q8_rows, q4_rows, NULL, bf16_rows, NULL, &dense_scalar};
