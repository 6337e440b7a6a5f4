/*
 * Vector helpers of the plan ops (dense.c, attention.c), on GCC vector types so that every ISA target compiles them
 * to its own registers: loads, a lane sum, dot / axpy, a vector exp, a 16-way butterfly sum. Static inline: each
 * translation unit of each ISA target gets its own copy.
 */
#ifndef WEFT_VEC_H
#define WEFT_VEC_H
#include <math.h>
#include <stdint.h>
#include <string.h>

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

#endif
