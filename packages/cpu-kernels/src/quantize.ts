/**
 * Q8_0 / Q4_0 quantizers in llama.cpp's reference rounding (ggml-quants.c,
 * quantize_row_q8_0_ref / quantize_row_q4_0_ref), all arithmetic in fp32
 * (Math.fround after each step; a double result of one fp32 op rounded once is the fp32 result):
 *   Q8_0: d = amax/127, id = d ? 1/d : 0, q = roundf(x·id) (halves away from zero);
 *   Q4_0: max = the x of largest |x|, d = max/-8, id = d ? 1/d : 0, q = min(15, (int8)(x·id + 8.5));
 * the scale is stored as fp16 (the quantization used the fp32 d, a value reads the fp16 one).
 * Activations (the "a8" semantics of the dot products) use Q8_0 with round-half-even, as ggml's SIMD
 * quantize_row_q8_0 (_mm256_round_ps) and the fixtures' torch.round do.
 */
import { fp16Table, fp32ToFp16 } from './fp16.js';
import { checkBlocks, QK, type Q4_0Weight, type Q8_0Weight } from './formats.js';

const fr = Math.fround;

function blockCount(src: Float32Array, what: string): number {
  if (!(src instanceof Float32Array)) throw new Error(`${what}: the source must be a Float32Array`);
  if (src.length % QK !== 0) throw new Error(`${what}: ${src.length} elements is not a multiple of ${QK} (rows of whole blocks)`);
  return src.length / QK;
}

/** Q8_0 blocks of `src` (rows of a row-major [n, k] weight with k % 32 = 0 are whole blocks). */
export function quantizeQ8_0(src: Float32Array): Q8_0Weight {
  const nb = blockCount(src, 'quantizeQ8_0');
  const qs = new Int8Array(src.length);
  const d = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const o = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(src[o + j]!));
    const dv = fr(amax / 127);
    const id = dv ? fr(1 / dv) : 0;
    d[b] = fp32ToFp16(dv);
    for (let j = 0; j < QK; j++) {
      const v = fr(src[o + j]! * id);
      qs[o + j] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
    }
  }
  return { qs, d };
}

/** Q4_0 blocks of `src`, GGUF's nibble order (byte i: element i low, element i+16 high). */
export function quantizeQ4_0(src: Float32Array): Q4_0Weight {
  const nb = blockCount(src, 'quantizeQ4_0');
  const qs = new Uint8Array(src.length / 2);
  const d = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const o = b * QK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = src[o + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const dv = fr(max / -8);
    const id = dv ? fr(1 / dv) : 0;
    d[b] = fp32ToFp16(dv);
    for (let j = 0; j < QK / 2; j++) {
      const x0 = fr(src[o + j]! * id);
      const x1 = fr(src[o + QK / 2 + j]! * id);
      const q0 = Math.min(15, Math.trunc(fr(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(x1 + 8.5)));
      qs[b * 16 + j] = q0 | (q1 << 4);
    }
  }
  return { qs, d };
}

export function dequantizeQ8_0(w: Q8_0Weight): Float32Array {
  const t = fp16Table();
  const out = new Float32Array(w.qs.length);
  for (let i = 0; i < out.length; i++) out[i] = w.qs[i]! * t[w.d[i >>> 5]!]!;
  return out;
}

export function dequantizeQ4_0(w: Q4_0Weight): Float32Array {
  const t = fp16Table();
  const out = new Float32Array(w.qs.length * 2);
  for (let b = 0; b < w.d.length; b++) {
    const dv = t[w.d[b]!]!;
    for (let j = 0; j < 16; j++) {
      const byte = w.qs[b * 16 + j]!;
      out[b * QK + j] = ((byte & 15) - 8) * dv;
      out[b * QK + 16 + j] = ((byte >>> 4) - 8) * dv;
    }
  }
  return out;
}

/** Activations as Q8_0 blocks with round-half-even (the a8 semantics); `d` holds the fp16-rounded scales as fp32. */
export interface Q8_0Activations {
  qs: Int8Array;
  d: Float32Array;
}

const RNE = 6755399441055744; // 1.5·2^52: adding and subtracting it rounds a double to an integer, halves to even

export function quantizeActivationsQ8_0(x: Float32Array, k: number): Q8_0Activations {
  checkBlocks(k, 'quantizeActivationsQ8_0');
  const nb = blockCount(x, 'quantizeActivationsQ8_0');
  const t = fp16Table();
  const qs = new Int8Array(x.length);
  const d = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const o = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[o + j]!));
    const dv = fr(amax / 127);
    const id = dv ? fr(1 / dv) : 0;
    d[b] = t[fp32ToFp16(dv)]!;
    for (let j = 0; j < QK; j++) qs[o + j] = fr(x[o + j]! * id) + RNE - RNE;
  }
  return { qs, d };
}

/** x after its Q8_0 round trip: what a kernel with a8 semantics multiplies (for references in tests). */
export function roundTripActivationsQ8_0(x: Float32Array, k: number): Float32Array {
  const { qs, d } = quantizeActivationsQ8_0(x, k);
  const out = new Float32Array(x.length);
  for (let i = 0; i < out.length; i++) out[i] = qs[i]! * d[i >>> 5]!;
  return out;
}
