/**
 * Host storage of one linear weight `[n out, k in]` in a compressed format,
 * filled row range by row range as the loader reads checkpoint tensors (so a
 * rank never holds more than one fp32 tensor beside the compressed ones).
 * tfjs has no 8- or 16-bit dtypes: the bytes live in typed arrays that a CPU
 * kernel reads directly, or that are widened per op into an fp32 tensor. The
 * formats and their quantizers (llama.cpp's reference rounding) are
 * @weft/cpu-kernels', the package whose kernels read them. The arrays sit in
 * its hostBuffer: 2 MiB huge pages where Linux and the addon give them (decode
 * streams every weight once a token), an ordinary ArrayBuffer elsewhere.
 * Q4_0 is stored in rows and, once all rows are in, may be repacked in place
 * into @weft/cpu-kernels' tile16 layout (`repack`, called by the linear
 * method's processWeightsAfterLoading); `layout` says which. Readers go
 * through the kernels (both layouts) or `dequantizeTransposed` / cpu-kernels'
 * `q4_0Rows`.
 */
import { float32ToBf16, QUANT_BLOCK, quantizedBytes } from '@weft/core';
import {
  bf16Transposed,
  dequantizeQ4_0Transposed,
  dequantizeQ8_0Transposed,
  hostBuffer,
  quantizeRowsQ4_0,
  repackQ4_0,
  type Q4_0Layout,
  quantizeRowsQ8_0,
  type Q4_0Weight as Q4_0Blocks,
  type Q8_0Weight as Q8_0Blocks,
} from '@weft/cpu-kernels';

export type PackedFormat = 'bf16' | 'q8_0' | 'q4_0';

interface PackedBase {
  readonly n: number;
  readonly k: number;
  readonly bytes: number;
  /** Rows `row0 … row0 + rows` from fp32 `src` ([rows, k] row-major). */
  storeRows(src: Float32Array, row0: number, rows: number): void;
  /** The weight as fp32, transposed to `[k, n]` (the dequantize-per-op path). */
  dequantizeTransposed(): Float32Array;
}
export interface Bf16Weight extends PackedBase {
  readonly format: 'bf16';
  /** bf16 bits `[n, k]` row-major. */
  readonly data: Uint16Array;
}
export interface Q8_0Weight extends PackedBase, Q8_0Blocks {
  readonly format: 'q8_0';
}
export interface Q4_0Weight extends PackedBase, Q4_0Blocks {
  readonly format: 'q4_0';
  readonly layout: Q4_0Layout;
  /** The bytes in place in `layout`'s order (all rows stored first: storeRows takes rows only). */
  repack(layout: Q4_0Layout): void;
}
export type PackedWeight = Bf16Weight | Q8_0Weight | Q4_0Weight;

/** Empty storage of a `[n, k]` weight; for the block formats k must be a multiple of 32 (the caller checked). */
export function createPackedWeight(format: PackedFormat, n: number, k: number): PackedWeight {
  if (format === 'bf16') {
    const data = new Uint16Array(hostBuffer(n * k * 2));
    return {
      format, n, k, data, bytes: n * k * 2,
      storeRows: (src, row0, rows) => void float32ToBf16(src.subarray(0, rows * k), data.subarray(row0 * k, (row0 + rows) * k)),
      dequantizeTransposed: () => bf16Transposed(data, n, k),
    };
  }
  if (k % QUANT_BLOCK !== 0) throw new RangeError(`${format}: input dim ${k} is not a multiple of ${QUANT_BLOCK}`);
  const d = new Uint16Array(hostBuffer(((n * k) / QUANT_BLOCK) * 2));
  const bytes = quantizedBytes(format, n * k);
  if (format === 'q8_0') {
    const w: Q8_0Weight = {
      format, n, k, bytes, d, qs: new Int8Array(hostBuffer(n * k)),
      storeRows: (src, row0, rows) => quantizeRowsQ8_0(src, rows, k, w, row0),
      dequantizeTransposed: () => dequantizeQ8_0Transposed(w, n, k),
    };
    return w;
  }
  let layout: Q4_0Layout = 'rows';
  const w: Q4_0Weight = {
    format, n, k, bytes, d, qs: new Uint8Array(hostBuffer((n * k) / 2)),
    get layout() {
      return layout;
    },
    storeRows: (src, row0, rows) => quantizeRowsQ4_0(src, rows, k, w, row0),
    dequantizeTransposed: () => dequantizeQ4_0Transposed(w, n, k),
    repack: (to) => void (layout = repackQ4_0(w, n, k, to)),
  };
  return w;
}
