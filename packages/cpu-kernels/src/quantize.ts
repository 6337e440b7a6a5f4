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
import { checkBf16, checkBlocks, checkQ4_0, checkQ8_0, QK, type Q4_0Weight, type Q8_0Weight } from './formats.js';
import { q4_0Rows } from './q4-tile.js';

const fr = Math.fround;

function blockCount(src: Float32Array, what: string): number {
  if (!(src instanceof Float32Array)) throw new Error(`${what}: the source must be a Float32Array`);
  if (src.length % QK !== 0) throw new Error(`${what}: ${src.length} elements is not a multiple of ${QK} (rows of whole blocks)`);
  return src.length / QK;
}

/** The blocks rows `row0 … row0 + rows` of a [n, k] weight take (first block, count), checked against the source and the scales. */
function blockRange(src: Float32Array, rows: number, k: number, d: Uint16Array, row0: number, what: string): { nb: number; b0: number } {
  checkBlocks(k, what);
  const nb = (rows * k) / QK;
  if (src.length < rows * k) throw new Error(`${what}: ${src.length} source elements for ${rows} rows of ${k}`);
  const b0 = (row0 * k) / QK;
  if (d.length < b0 + nb) throw new Error(`${what}: rows ${row0}…${row0 + rows} of ${k} are past the weight's ${d.length} blocks`);
  return { nb, b0 };
}

/**
 * Q8_0 blocks of `rows` rows of `src` ([rows, k] row-major, k % 32 = 0) into rows `row0…` of `out`, a
 * [n, k] weight's storage: a loader fills a weight row range by row range (fused shards), so a rank never
 * holds more than one fp32 tensor beside the packed ones.
 */
export function quantizeRowsQ8_0(src: Float32Array, rows: number, k: number, out: Q8_0Weight, row0 = 0): void {
  const { nb, b0 } = blockRange(src, rows, k, out.d, row0, 'quantizeRowsQ8_0');
  const { qs, d } = out;
  for (let b = 0; b < nb; b++) {
    const o = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(src[o + j]!));
    const dv = fr(amax / 127);
    const id = dv ? fr(1 / dv) : 0;
    d[b0 + b] = fp32ToFp16(dv);
    const q = (b0 + b) * QK;
    for (let j = 0; j < QK; j++) {
      const v = fr(src[o + j]! * id);
      qs[q + j] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
    }
  }
}

/** Q4_0 blocks (GGUF's nibble order: byte i holds element i low, element i+16 high) of `rows` rows of `src` into rows `row0…` of `out`. */
export function quantizeRowsQ4_0(src: Float32Array, rows: number, k: number, out: Q4_0Weight, row0 = 0): void {
  if ((out.layout ?? 'rows') !== 'rows') throw new Error(`quantizeRowsQ4_0: the weight is in layout '${out.layout}' (tiled once all its rows were in): rows are stored before repacking`);
  const { nb, b0 } = blockRange(src, rows, k, out.d, row0, 'quantizeRowsQ4_0');
  const { qs, d } = out;
  for (let b = 0; b < nb; b++) {
    const o = b * QK;
    // The value of largest magnitude, the first one on ties (strict <, as ggml).
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
    d[b0 + b] = fp32ToFp16(dv);
    for (let j = 0; j < QK / 2; j++) {
      // (int8_t)(x·id + 8.5f) truncates toward zero; the value is ≥ 0.5 there, so that is floor.
      const q0 = Math.min(15, Math.trunc(fr(fr(src[o + j]! * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(src[o + QK / 2 + j]! * id) + 8.5)));
      qs[(b0 + b) * 16 + j] = q0 | (q1 << 4);
    }
  }
}

/** Q8_0 blocks of `src` (rows of a row-major [n, k] weight with k % 32 = 0 are whole blocks). */
export function quantizeQ8_0(src: Float32Array): Q8_0Weight {
  const nb = blockCount(src, 'quantizeQ8_0');
  const w = { qs: new Int8Array(src.length), d: new Uint16Array(nb) };
  quantizeRowsQ8_0(src, 1, src.length, w);
  return w;
}

/** Q4_0 blocks of `src`, GGUF's nibble order. */
export function quantizeQ4_0(src: Float32Array): Q4_0Weight {
  const nb = blockCount(src, 'quantizeQ4_0');
  const w = { qs: new Uint8Array(src.length / 2), d: new Uint16Array(nb) };
  quantizeRowsQ4_0(src, 1, src.length, w);
  return w;
}

/** Element (r, c) of a [n, k] Q8_0 weight → out[r·rs + c·cs]. */
function dequantQ8_0(w: Q8_0Weight, n: number, k: number, out: Float32Array, rs: number, cs: number): Float32Array {
  const nb = k / QK;
  const t = fp16Table();
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < nb; j++) {
      const dv = t[w.d[r * nb + j]!]!;
      const q = r * k + j * QK;
      for (let i = 0; i < QK; i++) out[r * rs + (j * QK + i) * cs] = w.qs[q + i]! * dv;
    }
  }
  return out;
}

/** Element (r, c) of a [n, k] Q4_0 weight → out[r·rs + c·cs]. */
function dequantQ4_0(w: Q4_0Weight, n: number, k: number, out: Float32Array, rs: number, cs: number): Float32Array {
  const nb = k / QK;
  const t = fp16Table();
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < nb; j++) {
      const b = r * nb + j;
      const dv = t[w.d[b]!]!;
      for (let i = 0; i < QK / 2; i++) {
        const byte = w.qs[b * 16 + i]!;
        out[r * rs + (j * QK + i) * cs] = ((byte & 15) - 8) * dv;
        out[r * rs + (j * QK + QK / 2 + i) * cs] = ((byte >>> 4) - 8) * dv;
      }
    }
  }
  return out;
}

/** The values of Q8_0 blocks, in their order. */
export function dequantizeQ8_0(w: Q8_0Weight): Float32Array {
  return dequantQ8_0(w, 1, w.qs.length, new Float32Array(w.qs.length), 0, 1);
}

export function dequantizeQ4_0(w: Q4_0Weight): Float32Array {
  if ((w.layout ?? 'rows') !== 'rows') throw new Error(`dequantizeQ4_0: the blocks are in layout '${w.layout}' (dequantizeQ4_0Transposed takes any layout)`);
  return dequantQ4_0(w, 1, w.qs.length * 2, new Float32Array(w.qs.length * 2), 0, 1);
}

/** A [n, k] Q8_0 weight dequantized and transposed to `[k, n]` (how tfjs matmuls take a weight). */
export function dequantizeQ8_0Transposed(w: Q8_0Weight, n: number, k: number, out = new Float32Array(n * k)): Float32Array {
  checkQ8_0('dequantizeQ8_0Transposed', w, n, k);
  return dequantQ8_0(w, n, k, out, 1, n);
}

/** A [n, k] Q4_0 weight dequantized and transposed to `[k, n]`. */
export function dequantizeQ4_0Transposed(w: Q4_0Weight, n: number, k: number, out = new Float32Array(n * k)): Float32Array {
  checkQ4_0('dequantizeQ4_0Transposed', w, n, k);
  return dequantQ4_0(q4_0Rows(w, n, k), n, k, out, 1, n);
}

/** bf16 bits `[n, k]` row-major → fp32 transposed `[k, n]` (exact). */
export function bf16Transposed(w: Uint16Array, n: number, k: number, out = new Float32Array(n * k)): Float32Array {
  checkBf16('bf16Transposed', w, n, k);
  const bits = new Uint32Array(out.buffer, out.byteOffset, n * k);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) bits[c * n + r] = w[r * k + c]! << 16;
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
