/*
 * Paged attention of one layer (native/plan-ops.c `attention` writes the step's K/V, then calls this on the pool),
 * compiled once per ISA target as dense.c is.
 */
#include <stdlib.h>
#include "kernels.h"
#include "vec.h"

/*
 * Rows × KV heads [i0, i1) of the step: each row's G query heads of KV head g against its sequence's visible keys,
 * walked block by block (one table lookup a block; each key row read once for the G heads sharing it).
 */
void CAT(attend, DENSE_ISA)(const attn_t *A, int i0, int i1) {
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
