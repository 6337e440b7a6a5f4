/**
 * The weight formats every kernel of this package reads. A weight is
 * [outFeatures n, inFeatures k], row-major, k a multiple of 32 for the block
 * formats; a block is 32 consecutive inputs of one row with one fp16 scale.
 *   Q8_0: qs Int8Array(n·k) row-major; d Uint16Array(n·k/32) fp16 bits, block j of row r at d[r·(k/32)+j].
 *   Q4_0: qs Uint8Array(n·k/2), each row's blocks consecutive, 16 bytes a block as GGUF (byte i holds
 *         element i in its low nibble and element i+16 in its high nibble, both offset by 8); d as Q8_0.
 *         Or (layout 'tile16') whole tiles of 16 rows in q4-tile.ts's order: the same bytes, permuted within a tile.
 *   bf16: Uint16Array(n·k) bf16 bits.
 */
export const QK = 32;

export interface Q8_0Weight {
  qs: Int8Array;
  d: Uint16Array;
}

/** How a Q4_0 weight's bytes are ordered: 'rows' (GGUF's, above) or 'tile16' (q4-tile.ts). */
export type Q4_0Layout = 'rows' | 'tile16';

export interface Q4_0Weight {
  qs: Uint8Array;
  d: Uint16Array;
  /** Absent: 'rows'. */
  layout?: Q4_0Layout;
}

/** Throws unless `k` is a positive multiple of the block size. */
export function checkBlocks(k: number, what: string): void {
  if (!Number.isInteger(k) || k <= 0 || k % QK !== 0) throw new Error(`${what}: the input dimension ${k} is not a positive multiple of ${QK} (the block size)`);
}

export function checkLength(actual: number, expected: number, what: string): void {
  if (actual !== expected) throw new Error(`${what} has ${actual} elements, expected ${expected}`);
}

/** The argument checks every gemm shares: x [m, k], out [m, n]. */
export function checkGemm(name: string, x: Float32Array, m: number, k: number, n: number, out: Float32Array): void {
  for (const [v, label] of [[m, 'm'], [k, 'k'], [n, 'n']] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${name}: ${label} = ${v} is not a positive integer`);
  }
  if (!(x instanceof Float32Array)) throw new Error(`${name}: x must be a Float32Array`);
  if (!(out instanceof Float32Array)) throw new Error(`${name}: out must be a Float32Array`);
  checkLength(x.length, m * k, `${name}: x [m=${m}, k=${k}]`);
  checkLength(out.length, m * n, `${name}: out [m=${m}, n=${n}]`);
}

export function checkQ8_0(name: string, w: Q8_0Weight, n: number, k: number): void {
  checkBlocks(k, name);
  if (!(w.qs instanceof Int8Array) || !(w.d instanceof Uint16Array)) throw new Error(`${name}: a Q8_0 weight is { qs: Int8Array, d: Uint16Array }`);
  checkLength(w.qs.length, n * k, `${name}: w.qs [n=${n}, k=${k}]`);
  checkLength(w.d.length, (n * k) / QK, `${name}: w.d [n=${n}, k/32=${k / QK}]`);
}

export function checkQ4_0(name: string, w: Q4_0Weight, n: number, k: number): void {
  checkBlocks(k, name);
  if (!(w.qs instanceof Uint8Array) || !(w.d instanceof Uint16Array)) throw new Error(`${name}: a Q4_0 weight is { qs: Uint8Array, d: Uint16Array }`);
  if (w.layout !== undefined && w.layout !== 'rows' && w.layout !== 'tile16') throw new Error(`${name}: a Q4_0 weight's layout is 'rows' or 'tile16', got ${String(w.layout)}`);
  checkLength(w.qs.length, (n * k) / 2, `${name}: w.qs [n=${n}, k/2=${k / 2}]`);
  checkLength(w.d.length, (n * k) / QK, `${name}: w.d [n=${n}, k/32=${k / QK}]`);
}

export function checkBf16(name: string, w: Uint16Array, n: number, k: number): void {
  if (!(w instanceof Uint16Array)) throw new Error(`${name}: a bf16 weight is a Uint16Array of bf16 bits`);
  checkLength(w.length, n * k, `${name}: w [n=${n}, k=${k}]`);
}
