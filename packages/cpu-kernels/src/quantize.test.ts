import { describe, expect, it } from 'vitest';
import { bf16ToFp32, fp16ToFp32, fp32ToBf16, fp32ToFp16, fromBf16, toBf16 } from './fp16.js';
import {
  bf16Transposed,
  dequantizeQ4_0,
  dequantizeQ4_0Transposed,
  dequantizeQ8_0,
  dequantizeQ8_0Transposed,
  quantizeActivationsQ8_0,
  quantizeQ4_0,
  quantizeQ8_0,
  quantizeRowsQ4_0,
  quantizeRowsQ8_0,
} from './quantize.js';

describe('fp16 / bf16', () => {
  it('rounds fp32 to fp16 to nearest even, with subnormals and overflow', () => {
    expect(fp32ToFp16(1)).toBe(0x3c00);
    expect(fp32ToFp16(-2)).toBe(0xc000);
    expect(fp32ToFp16(65504)).toBe(0x7bff);
    expect(fp32ToFp16(65520)).toBe(0x7c00); // halfway to the next binade rounds to inf
    expect(fp32ToFp16(2 ** -24)).toBe(1);
    expect(fp32ToFp16(2 ** -25)).toBe(0); // tie to even (0)
    expect(fp32ToFp16(3 * 2 ** -26)).toBe(1);
    expect(fp32ToFp16(3 * 2 ** -25)).toBe(2); // 1.5 subnormal quanta: tie to even (2)
    expect(fp32ToFp16(1 + 2 ** -11)).toBe(0x3c00); // tie to even
    expect(fp32ToFp16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(fp32ToFp16(NaN) & 0x7e00).toBe(0x7e00);
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaN payloads
      expect(fp32ToFp16(fp16ToFp32(h))).toBe(h);
    }
  });

  it('rounds fp32 to bf16 to nearest even', () => {
    expect(fp32ToBf16(1)).toBe(0x3f80);
    expect(bf16ToFp32(0x3f80)).toBe(1);
    expect(fp32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(fp32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    const x = new Float32Array([0.1, -3.7, 1e-30, 65504]);
    const back = fromBf16(toBf16(x));
    for (let i = 0; i < x.length; i++) expect(Math.abs(back[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -8);
    expect(Array.from(toBf16(x))).toEqual(Array.from(x, fp32ToBf16));
  });
});

describe('Q8_0 / Q4_0 reference quantizers', () => {
  it('Q8_0: d = amax/127, q = roundf(x/d) (halves away from zero)', () => {
    const x = new Float32Array(32);
    x[0] = 127; // d = 1, id = 1
    x[1] = 2.5; // roundf → 3 (not 2)
    x[2] = -2.5; // → -3
    x[3] = -127;
    x[4] = 0.49;
    const { qs, d } = quantizeQ8_0(x);
    expect(fp16ToFp32(d[0]!)).toBe(1);
    expect(Array.from(qs.slice(0, 5))).toEqual([127, 3, -3, -127, 0]);
    const zero = quantizeQ8_0(new Float32Array(64));
    expect(Array.from(zero.d)).toEqual([0, 0]);
    expect(zero.qs.every((q) => q === 0)).toBe(true);
  });

  it('Q4_0: d = max/-8 of the largest |x| (sign kept), q = min(15, trunc(x/d + 8.5)), GGUF nibble order', () => {
    const x = new Float32Array(32);
    x[0] = -8; // max = -8 → d = 1, id = 1: q = trunc(-8 + 8.5) = 0
    x[16] = 7; // trunc(15.5) = 15
    x[1] = 3.2; // trunc(11.7) = 11
    x[17] = -0.6; // trunc(7.9) = 7
    const { qs, d } = quantizeQ4_0(x);
    expect(fp16ToFp32(d[0]!)).toBe(1);
    expect(qs.length).toBe(16);
    expect(qs[0]).toBe(0 | (15 << 4));
    expect(qs[1]).toBe(11 | (7 << 4));
    expect(qs[2]).toBe(8 | (8 << 4)); // zeros → 8
    const pos = new Float32Array(32).fill(0);
    pos[5] = 8; // max positive: d = -1; x = 8 → trunc(-8 + 8.5) = 0, value (0 - 8)·-1 = 8
    const back = dequantizeQ4_0(quantizeQ4_0(pos));
    expect(back[5]).toBe(8);
    // the largest positive element maps to q = 0; q = 16 (x = -max) clamps to 15
  });

  it('dequantized blocks stay within half a quantum of the source', () => {
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    const x = Float32Array.from({ length: 32 * 40 }, rnd);
    const q8 = quantizeQ8_0(x);
    const q4 = quantizeQ4_0(x);
    const b8 = dequantizeQ8_0(q8);
    const b4 = dequantizeQ4_0(q4);
    for (let b = 0; b < 40; b++) {
      const d8 = fp16ToFp32(q8.d[b]!);
      const d4 = Math.abs(fp16ToFp32(q4.d[b]!));
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        expect(Math.abs(b8[i]! - x[i]!)).toBeLessThanOrEqual(d8 * 0.5 + Math.abs(x[i]!) * 1e-3);
        expect(Math.abs(b4[i]! - x[i]!)).toBeLessThanOrEqual(d4 * 1.0 + Math.abs(x[i]!) * 1e-3);
      }
    }
  });

  it('activations round halves to even and keep the fp16-rounded scale', () => {
    const x = new Float32Array(32);
    x[0] = 127;
    x[1] = 2.5; // → 2
    x[2] = 3.5; // → 4
    x[3] = -2.5; // → -2
    const a = quantizeActivationsQ8_0(x, 32);
    expect(Array.from(a.qs.slice(0, 4))).toEqual([127, 2, 4, -2]);
    expect(a.d[0]).toBe(1);
    const y = Float32Array.from({ length: 32 }, (_, i) => 0.001 * (i + 1));
    expect(quantizeActivationsQ8_0(y, 32).d[0]).toBe(fp16ToFp32(fp32ToFp16(Math.fround(0.032 / 127))));
  });

  it('names the problem on bad input', () => {
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(/33 elements is not a multiple of 32/);
    const w = { qs: new Int8Array(64), d: new Uint16Array(2) };
    expect(() => quantizeRowsQ8_0(new Float32Array(64), 1, 64, w, 1)).toThrow(/rows 1…2 of 64 are past the weight's 2 blocks/);
    expect(() => quantizeRowsQ4_0(new Float32Array(40), 1, 40, { qs: new Uint8Array(20), d: new Uint16Array(2) })).toThrow(/input dimension 40 is not a positive multiple of 32/);
    expect(() => dequantizeQ8_0Transposed(w, 2, 64)).toThrow(/w.qs \[n=2, k=64\] has 64 elements, expected 128/);
    expect(() => quantizeActivationsQ8_0(new Float32Array(48), 48)).toThrow(/48 is not a positive multiple of 32/);
  });
});

/** Random rows with a zero block, a block of one value, and exact halves (ties) in another. */
function rows(n: number, seed: number): Float32Array {
  let s = seed;
  const out = Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2);
  out.fill(0, 32, 64);
  out.fill(0.25, 64, 96);
  for (let i = 96; i < 128; i++) out[i] = (i % 5) * 0.5 - 1;
  return out;
}

const transpose = (a: Float32Array, r: number, c: number) => {
  const t = new Float32Array(a.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = a[i * c + j]!;
  return t;
};

describe('a weight filled row range by row range (loaders, fused shards)', () => {
  const n = 12;
  const k = 128;
  const x = rows(n * k, 3);

  it('Q8_0 and Q4_0: ranges in any order give the blocks of the whole', () => {
    const q8 = { qs: new Int8Array(n * k), d: new Uint16Array((n * k) / 32) };
    quantizeRowsQ8_0(x.subarray(8 * k), 4, k, q8, 8);
    quantizeRowsQ8_0(x.subarray(0, 8 * k), 8, k, q8, 0);
    const whole8 = quantizeQ8_0(x);
    expect(Array.from(q8.qs)).toEqual(Array.from(whole8.qs));
    expect(Array.from(q8.d)).toEqual(Array.from(whole8.d));
    const q4 = { qs: new Uint8Array((n * k) / 2), d: new Uint16Array((n * k) / 32) };
    quantizeRowsQ4_0(x.subarray(5 * k), 7, k, q4, 5);
    quantizeRowsQ4_0(x, 5, k, q4, 0);
    const whole4 = quantizeQ4_0(x);
    expect(Array.from(q4.qs)).toEqual(Array.from(whole4.qs));
    expect(Array.from(q4.d)).toEqual(Array.from(whole4.d));
  });

  it('dequantized transposed to [k, n] equals the row-major values transposed', () => {
    const q8 = quantizeQ8_0(x);
    const q4 = quantizeQ4_0(x);
    expect(Array.from(dequantizeQ8_0Transposed(q8, n, k))).toEqual(Array.from(transpose(dequantizeQ8_0(q8), n, k)));
    expect(Array.from(dequantizeQ4_0Transposed(q4, n, k))).toEqual(Array.from(transpose(dequantizeQ4_0(q4), n, k)));
    const b = toBf16(x);
    expect(Array.from(bf16Transposed(b, n, k))).toEqual(Array.from(transpose(fromBf16(b), n, k)));
  });
});
