/**
 * llama.cpp's Q8_0 and Q4_0 blocks (ggml-quants.c `quantize_row_q8_0_ref`,
 * `quantize_row_q4_0_ref`, `dequantize_row_q*_0`), in the layout weft's CPU
 * kernels read: a weight [n out, k in] row-major, blocks of 32 along k, one
 * fp16 scale per block at `d[r·(k/32) + j]`;
 * - Q8_0: `qs` Int8Array(n·k) row-major;
 * - Q4_0: `qs` Uint8Array(n·k/2), each row's blocks consecutive, 16 bytes a
 *   block as GGUF: byte i holds element i (low nibble) and i+16 (high).
 * Arithmetic is float32, as in C: the quantization uses the fp32 scale, the
 * value the fp16-rounded one.
 */
import { float32ToFp16Bits, fp16BitsToFloat32, QUANT_BLOCK as QK } from '@weft/core';

export interface Q8_0Blocks {
  qs: Int8Array;
  d: Uint16Array;
}
export interface Q4_0Blocks {
  qs: Uint8Array;
  d: Uint16Array;
}

const f = Math.fround;

let fp16Table: Float32Array | undefined;
/** fp16 bits → value, all 65,536 of them. */
export function fp16Values(): Float32Array {
  if (!fp16Table) {
    fp16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) fp16Table[h] = fp16BitsToFloat32(h);
  }
  return fp16Table;
}

/** C's roundf: halfway cases away from zero. */
function roundf(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

/** Quantize `rows` rows of `src` ([rows, k] row-major) into rows `row0…` of `out`. */
export function quantizeRowsQ8_0(src: Float32Array, rows: number, k: number, out: Q8_0Blocks, row0 = 0): void {
  const nb = k / QK;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < nb; j++) {
      const s = r * k + j * QK;
      let amax = 0;
      for (let i = 0; i < QK; i++) amax = Math.max(amax, Math.abs(src[s + i]!));
      const d = f(amax / 127);
      const id = d ? f(1 / d) : 0;
      out.d[(row0 + r) * nb + j] = float32ToFp16Bits(d);
      const q = (row0 + r) * k + j * QK;
      for (let i = 0; i < QK; i++) out.qs[q + i] = roundf(f(src[s + i]! * id));
    }
  }
}

/** Quantize `rows` rows of `src` ([rows, k] row-major) into rows `row0…` of `out`. */
export function quantizeRowsQ4_0(src: Float32Array, rows: number, k: number, out: Q4_0Blocks, row0 = 0): void {
  const nb = k / QK;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < nb; j++) {
      const s = r * k + j * QK;
      // The value of largest magnitude, the first one on ties (strict <, as ggml).
      let amax = 0;
      let max = 0;
      for (let i = 0; i < QK; i++) {
        const v = src[s + i]!;
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = f(max / -8);
      const id = d ? f(1 / d) : 0;
      const b = (row0 + r) * nb + j;
      out.d[b] = float32ToFp16Bits(d);
      for (let i = 0; i < QK / 2; i++) {
        // (int8_t)(x + 8.5f) truncates toward zero; the value is ≥ 0.5 so that is floor.
        const lo = Math.min(15, Math.trunc(f(f(src[s + i]! * id) + 8.5)));
        const hi = Math.min(15, Math.trunc(f(f(src[s + QK / 2 + i]! * id) + 8.5)));
        out.qs[b * (QK / 2) + i] = lo | (hi << 4);
      }
    }
  }
}

/** The dequantized weight, transposed to `[k, n]` (how weft's tfjs matmuls take a weight). */
export function dequantizeQ8_0Transposed(w: Q8_0Blocks, n: number, k: number, out = new Float32Array(n * k)): Float32Array {
  const nb = k / QK;
  const table = fp16Values();
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < nb; j++) {
      const d = table[w.d[r * nb + j]!]!;
      const q = r * k + j * QK;
      for (let i = 0; i < QK; i++) out[(j * QK + i) * n + r] = w.qs[q + i]! * d;
    }
  }
  return out;
}

/** The dequantized weight, transposed to `[k, n]`. */
export function dequantizeQ4_0Transposed(w: Q4_0Blocks, n: number, k: number, out = new Float32Array(n * k)): Float32Array {
  const nb = k / QK;
  const table = fp16Values();
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < nb; j++) {
      const b = r * nb + j;
      const d = table[w.d[b]!]!;
      const col = j * QK;
      for (let i = 0; i < QK / 2; i++) {
        const byte = w.qs[b * (QK / 2) + i]!;
        out[(col + i) * n + r] = ((byte & 0x0f) - 8) * d;
        out[(col + QK / 2 + i) * n + r] = ((byte >> 4) - 8) * d;
      }
    }
  }
  return out;
}

/** bf16 [n, k] row-major → fp32 transposed `[k, n]`. */
export function bf16Transposed(w: Uint16Array, n: number, k: number, out = new Float32Array(n * k)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, n * k);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) bits[c * n + r] = w[r * k + c]! << 16;
  return out;
}
