/**
 * The portable kernels: plain JS, the same semantics as the native ones, used
 * where the addon is not built (and as the reference the native paths are
 * tested against).
 *   gemmQ8_0 / gemmQ4_0 (a8): each row of x is quantized to Q8_0 blocks, then
 *     out[i, r] = Σ_b fp16(dw[r,b]) · fp16(dx[i,b]) · Σ_j qw[r,b,j] · qx[i,b,j]   (integer block dots, as ggml's
 *     vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0), in fp32 block after block: sum ← sum + dot · (dw · dx), each
 *     operation rounded to fp32 — the native paths' order, so every path gives the same bits for a row, alone
 *     or in any batch;
 *   gemmBf16 (weight-only): out[i, r] = Σ_j x[i, j] · bf16(w[r, j]) in fp32, in native/kernels.h's BF16_ORDER (FMAs
 *     emulated exactly): the native paths' bits.
 * x [m, k] and out [m, n] are row-major; out = x · Wᵀ.
 */
import { fp16Table } from './fp16.js';
import { QK, type Q4_0Weight, type Q8_0Weight } from './formats.js';
import { q4_0Rows } from './q4-tile.js';
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

export function gemmQ4_0Portable(x: Float32Array, m: number, k: number, weight: Q4_0Weight, n: number, out: Float32Array): void {
  const w = q4_0Rows(weight, n, k); // (a tiled weight is the native kernels' layout: put back in rows, a copy a call)
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

/**
 * fp32 fma(a, b, c) = a·b + c rounded once, for a·b exact in double (a bf16 weight times an fp32 x: 8 + 24
 * significand bits): the double sum s can sit exactly on a midpoint between two floats while the exact sum does not
 * (its rounding error, from TwoSum, then says which way), anywhere else rounding s to fp32 is the fp32 result.
 */
function fma32(p: number, c: number): number {
  const s = p + c;
  const r = fr(s);
  if (r === s) return r;
  const b = s - p;
  const err = p - (s - b) + (c - b);
  if (err === 0) return r;
  const o = 2 * s - r; // the other neighbour when s is a midpoint
  if (fr(o) !== o) return r;
  return err > 0 ? Math.max(r, o) : Math.min(r, o);
}

/** bf16 (weight-only) in native/kernels.h's BF16_ORDER: 16 lanes of element pairs over chunks of 32, a tree, the tail by fma. */
export function gemmBf16Portable(x: Float32Array, m: number, k: number, w: Uint16Array, n: number, out: Float32Array): void {
  const row = new Float32Array(k);
  const bits = new Uint32Array(row.buffer);
  const s = new Float64Array(16);
  const kc = Math.floor(k / 32);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < k; j++) bits[j] = w[r * k + j]! << 16;
    for (let i = 0; i < m; i++) {
      const xo = i * k;
      s.fill(0);
      for (let c = 0; c < kc; c++)
        for (let l = 0; l < 16; l++) {
          const j = xo + c * 32 + 2 * l, jw = c * 32 + 2 * l;
          s[l] = fma32(row[jw]! * x[j]!, s[l]!);
          s[l] = fma32(row[jw + 1]! * x[j + 1]!, s[l]!);
        }
      for (let half = 8; half >= 1; half >>= 1) for (let l = 0; l < half; l++) s[l] = fr(s[l]! + s[l + half]!);
      let sum = s[0]!;
      for (let j = kc * 32; j < k; j++) sum = fma32(row[j]! * x[xo + j]!, sum);
      out[i * n + r] = sum;
    }
  }
}
