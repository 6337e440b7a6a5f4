/**
 * The portable kernels: plain JS, the same semantics as the native ones, used
 * where the addon is not built (and as the reference the native paths are
 * tested against).
 *   gemmQ8_0 / gemmQ4_0 (a8): each row of x is quantized to Q8_0 blocks, then
 *     out[i, r] = Σ_b fp16(dw[r,b]) · fp16(dx[i,b]) · Σ_j qw[r,b,j] · qx[i,b,j]   (integer block dots, as ggml's
 *     vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0), in fp32 block after block: sum ← sum + dot · (dw · dx), each
 *     operation rounded to fp32 — the native paths' order, so every path gives the same bits for a row, alone
 *     or in any batch;
 *   gemmBf16 (weight-only): out[i, r] = Σ_j x[i, j] · bf16(w[r, j]) in fp32 accumulation.
 * x [m, k] and out [m, n] are row-major; out = x · Wᵀ.
 */
import { fp16Table } from './fp16.js';
import { QK, type Q4_0Weight, type Q8_0Weight } from './formats.js';
import { quantizeActivationsQ8_0 } from './quantize.js';

const fr = Math.fround;

export function gemmQ8_0Portable(x: Float32Array, m: number, k: number, w: Q8_0Weight, n: number, out: Float32Array): void {
  const a = quantizeActivationsQ8_0(x, k);
  const t = fp16Table();
  const nb = k / QK;
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < m; i++) {
      let sum = 0;
      for (let b = 0; b < nb; b++) {
        const wo = (r * nb + b) * QK;
        const xo = (i * nb + b) * QK;
        let dot = 0;
        for (let j = 0; j < QK; j++) dot += w.qs[wo + j]! * a.qs[xo + j]!;
        sum = fr(sum + fr(dot * fr(t[w.d[r * nb + b]!]! * a.d[i * nb + b]!)));
      }
      out[i * n + r] = sum;
    }
  }
}

export function gemmQ4_0Portable(x: Float32Array, m: number, k: number, w: Q4_0Weight, n: number, out: Float32Array): void {
  const a = quantizeActivationsQ8_0(x, k);
  const t = fp16Table();
  const nb = k / QK;
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < m; i++) {
      let sum = 0;
      for (let b = 0; b < nb; b++) {
        const wo = (r * nb + b) * 16;
        const xo = (i * nb + b) * QK;
        let dot = 0;
        for (let j = 0; j < 16; j++) {
          const byte = w.qs[wo + j]!;
          dot += ((byte & 15) - 8) * a.qs[xo + j]! + ((byte >>> 4) - 8) * a.qs[xo + 16 + j]!;
        }
        sum = fr(sum + fr(dot * fr(t[w.d[r * nb + b]!]! * a.d[i * nb + b]!)));
      }
      out[i * n + r] = sum;
    }
  }
}

export function gemmBf16Portable(x: Float32Array, m: number, k: number, w: Uint16Array, n: number, out: Float32Array): void {
  const row = new Float32Array(k);
  const bits = new Uint32Array(row.buffer);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < k; j++) bits[j] = w[r * k + j]! << 16;
    for (let i = 0; i < m; i++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const xo = i * k;
      let j = 0;
      for (; j + 4 <= k; j += 4) {
        s0 += x[xo + j]! * row[j]!;
        s1 += x[xo + j + 1]! * row[j + 1]!;
        s2 += x[xo + j + 2]! * row[j + 2]!;
        s3 += x[xo + j + 3]! * row[j + 3]!;
      }
      for (; j < k; j++) s0 += x[xo + j]! * row[j]!;
      out[i * n + r] = s0 + s1 + (s2 + s3);
    }
  }
}
