/**
 * llama.cpp's Q8_0 / Q4_0 blocks: a hand-checked block, agreement with
 * @weft/cpu-kernels' quantizers (written separately from the same C), and the
 * packed weight filled row range by row range equal to filling it whole.
 */
import { fp16BitsToFloat32 } from '@weft/core';
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from '@weft/cpu-kernels';
import { describe, expect, it } from 'vitest';
import { dequantizeQ4_0Transposed, dequantizeQ8_0Transposed, quantizeRowsQ4_0, quantizeRowsQ8_0 } from './ggml-blocks.js';
import { createPackedWeight } from './packed-weight.js';

function random(n: number, seed: number): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 0.2;
  }
  // A zero block, a block of one value, and exact halves (ties) in another.
  out.fill(0, 32, 64);
  out.fill(0.25, 64, 96);
  for (let i = 96; i < 128; i++) out[i] = (i % 5) * 0.5 - 1;
  return out;
}

const transpose = (a: Float32Array, rows: number, cols: number) => {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
};

describe('Q8_0', () => {
  it('one block by hand: d = amax/127 (fp16), q = roundf(x/d)', () => {
    const x = new Float32Array(32);
    x[0] = 1.27;
    x[1] = -0.635;
    x[2] = 0.005;
    const w = { qs: new Int8Array(32), d: new Uint16Array(1) };
    quantizeRowsQ8_0(x, 1, 32, w);
    expect(fp16BitsToFloat32(w.d[0]!)).toBeCloseTo(0.01, 4);
    // -0.635/0.01 = -63.5 (in float32 just past or before the half): the C rounding gives ±63 or 64 away from zero.
    expect([w.qs[0], Math.abs(w.qs[1]!) >= 63, w.qs[2]]).toEqual([127, true, 1]);
  });

  it('equals @weft/cpu-kernels on random rows, zero blocks and ties', () => {
    const n = 6;
    const k = 128;
    const x = random(n * k, 7);
    const w = { qs: new Int8Array(n * k), d: new Uint16Array((n * k) / 32) };
    quantizeRowsQ8_0(x, n, k, w);
    const ref = quantizeQ8_0(x);
    expect(Array.from(w.qs)).toEqual(Array.from(ref.qs));
    expect(Array.from(w.d)).toEqual(Array.from(ref.d));
    expect(Array.from(dequantizeQ8_0Transposed(w, n, k))).toEqual(Array.from(transpose(dequantizeQ8_0(ref), n, k)));
  });
});

describe('Q4_0', () => {
  it('one block by hand: d = (value of largest |x|)/−8, q = min(15, trunc(x/d + 8.5)), GGUF nibble order', () => {
    const x = new Float32Array(32);
    x[0] = -0.8; // largest magnitude, negative: d = 0.1
    x[1] = 0.8;
    x[16] = 0.35;
    const w = { qs: new Uint8Array(16), d: new Uint16Array(1) };
    quantizeRowsQ4_0(x, 1, 32, w);
    const d = fp16BitsToFloat32(w.d[0]!);
    expect(d).toBeCloseTo(0.1, 3);
    // x0 = −0.8: −0.8/0.1 + 8.5 = 0.5 → 0; x1 = 0.8: 8 + 8.5 → 16 → clamped 15; x16 = 0.35: 3.5 + 8.5 = 12.
    expect(w.qs[0]! & 0x0f).toBe(0);
    expect(w.qs[1]! & 0x0f).toBe(15);
    expect(w.qs[0]! >> 4).toBe(12);
    expect(w.qs[2]).toBe(8 | (8 << 4));
  });

  it('equals @weft/cpu-kernels on random rows, zero blocks and ties', () => {
    const n = 5;
    const k = 128;
    const x = random(n * k, 11);
    const w = { qs: new Uint8Array((n * k) / 2), d: new Uint16Array((n * k) / 32) };
    quantizeRowsQ4_0(x, n, k, w);
    const ref = quantizeQ4_0(x);
    expect(Array.from(w.qs)).toEqual(Array.from(ref.qs));
    expect(Array.from(w.d)).toEqual(Array.from(ref.d));
    expect(Array.from(dequantizeQ4_0Transposed(w, n, k))).toEqual(Array.from(transpose(dequantizeQ4_0(ref), n, k)));
  });
});

describe('packed weights', () => {
  it.each(['q8_0', 'q4_0', 'bf16'] as const)('%s: filled in row ranges (fused shards) equals filled whole', (format) => {
    const n = 12;
    const k = 64;
    const x = random(n * k, 3);
    const whole = createPackedWeight(format, n, k);
    whole.storeRows(x, 0, n);
    const parts = createPackedWeight(format, n, k);
    parts.storeRows(x.subarray(8 * k), 8, 4);
    parts.storeRows(x.subarray(0, 8 * k), 0, 8);
    expect(Array.from(parts.dequantizeTransposed())).toEqual(Array.from(whole.dequantizeTransposed()));
    expect(whole.bytes).toBe(format === 'bf16' ? n * k * 2 : ((n * k) / 32) * (format === 'q8_0' ? 34 : 18));
  });

  it('refuses a block format whose input dim is not whole blocks', () => {
    expect(() => createPackedWeight('q4_0', 4, 40)).toThrow(/input dim 40 is not a multiple of 32/);
  });
});
