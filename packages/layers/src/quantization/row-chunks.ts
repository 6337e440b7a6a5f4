/**
 * Packing a linear weight from its checkpoint a few rows at a time (issue 19: peak memory near the compressed
 * size). A loader asks its handle for the rank's slice (`read()`, `narrow(0, …)`, `narrow(1, …)`) and hands the
 * result to the parameter; for a packed weight the handle returns a `RowSource` instead of the whole slice in
 * fp32: the same shape, but its rows are read from the file and converted chunk by chunk, each chunk quantized
 * into the blocks before the next is read. So neither the tensor's file bytes nor its fp32 values exist whole;
 * only a chunk of each (about ROW_CHUNK_FLOATS floats). `data` still gives the whole slice (a path that needs it
 * reads it then).
 */
import type { HostTensor, WeightHandle } from '../parameter.js';

/** About this many fp32 values a chunk (1 MiB): small enough to come and go from malloc's free lists. */
export const ROW_CHUNK_FLOATS = 1 << 18;

export interface RowSource extends HostTensor {
  /** Rows `[row0, row0 + rows)` of the slice as fp32, `[rows, shape[1]]` row-major. */
  rows(row0: number, rows: number): Float32Array;
  /** Rows a chunk should take (chunkRows of the width read from the file). */
  readonly chunk: number;
}

export function isRowSource(host: HostTensor): host is RowSource {
  return typeof (host as Partial<RowSource>).rows === 'function';
}

/** Rows of the slice a chunk holds for a row width of `k`. */
export function chunkRows(k: number): number {
  return Math.max(1, Math.floor(ROW_CHUNK_FLOATS / Math.max(1, k)));
}

/** `weight` whose `read()` / `narrow()` of a 2-D tensor return RowSources; other ranks pass through. */
export function rowChunked(weight: WeightHandle): WeightHandle {
  if (weight.shape.length !== 2) return weight;
  const [n, k] = weight.shape as [number, number];
  return {
    name: weight.name,
    shape: weight.shape,
    read: () => source([n, k], k, () => weight.read(), (r0, rows) => f32(weight.narrow(0, r0, rows))),
    narrow: (dim, start, length) => {
      if (dim === 0) return source([length, k], k, () => weight.narrow(0, start, length), (r0, rows) => f32(weight.narrow(0, start + r0, rows)));
      if (dim !== 1) return weight.narrow(dim, start, length);
      // A column slice (row-parallel): whole rows are read a chunk at a time and their columns copied out.
      return source([n, length], k, () => weight.narrow(1, start, length), (r0, rows) => {
        const full = f32(weight.narrow(0, r0, rows));
        if (length === k) return full;
        const out = new Float32Array(rows * length);
        for (let r = 0; r < rows; r++) out.set(full.subarray(r * k + start, r * k + start + length), r * length);
        return out;
      });
    },
  };
}

function source(shape: number[], width: number, whole: () => HostTensor, rows: (row0: number, rows: number) => Float32Array): RowSource {
  let cached: HostTensor | undefined;
  return {
    shape,
    dtype: 'float32',
    chunk: chunkRows(width),
    get data() {
      return (cached ??= whole()).data;
    },
    rows,
  };
}

function f32(host: HostTensor): Float32Array {
  if (!(host.data instanceof Float32Array)) throw new TypeError(`a linear weight's checkpoint tensor is ${host.dtype}, not a float type`);
  return host.data;
}
