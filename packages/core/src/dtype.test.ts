import { describe, expect, it } from 'vitest';
import { bf16ToFloat32, dtypeByteSize, float32ToBf16, float32ToFp16Bits, fp16BitsToFloat32, fp16ToFloat32, isSafetensorsDtype, loadedDtypeOf } from './dtype.js';

describe('bf16ToFloat32', () => {
  it('widens known bit patterns', () => {
    const bits = [0x0000, 0x8000, 0x3f80, 0xc000, 0x3e80, 0x4049, 0x7f80, 0xff80, 0x0001, 0x7f7f];
    const want = [0, -0, 1, -2, 0.25, 3.140625, Infinity, -Infinity, 2 ** -133, 3.3895313892515355e38];
    const got = bf16ToFloat32(Uint16Array.from(bits));
    expect(Array.from(got)).toEqual(want);
    expect(Object.is(got[1], -0)).toBe(true);
  });

  it('keeps nan', () => {
    expect(Number.isNaN(bf16ToFloat32(Uint16Array.of(0x7fc0))[0])).toBe(true);
  });

  it('writes into a given output and rejects a short one', () => {
    const out = new Float32Array(3);
    bf16ToFloat32(Uint16Array.of(0x3f80, 0x4000), out);
    expect(Array.from(out)).toEqual([1, 2, 0]);
    expect(() => bf16ToFloat32(Uint16Array.of(1, 2), new Float32Array(1))).toThrow(/output holds 1 values, input has 2/);
  });

  it('round-trips every float32 that is exactly a bf16', () => {
    const f = Float32Array.of(1.5, -7, 1024, 0.0078125);
    const u = new Uint32Array(f.buffer);
    const bits = Uint16Array.from(u, (x) => x >>> 16);
    expect(Array.from(bf16ToFloat32(bits))).toEqual(Array.from(f));
  });
});

describe('fp16ToFloat32', () => {
  it('converts normals, subnormals, zeros and infinities', () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3800, 0.5],
      [0x3555, 0.333251953125],
      [0x7bff, 65504],
      [0xfbff, -65504],
      [0x0400, 6.103515625e-5], // smallest normal
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x8001, -(2 ** -24)],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    const got = fp16ToFloat32(Uint16Array.from(cases.map((c) => c[0])));
    expect(Array.from(got)).toEqual(cases.map((c) => c[1]));
    expect(Object.is(fp16ToFloat32(Uint16Array.of(0x8000))[0], -0)).toBe(true);
  });

  it('turns every nan pattern into nan', () => {
    const got = fp16ToFloat32(Uint16Array.of(0x7e00, 0x7c01, 0xfe00, 0x7fff));
    for (const v of got) expect(Number.isNaN(v)).toBe(true);
  });

  it('agrees with the scalar conversion on all 65536 patterns', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const got = fp16ToFloat32(all);
    for (let h = 0; h < 65536; h++) {
      const want = Math.fround(fp16BitsToFloat32(h));
      if (Number.isNaN(want)) expect(Number.isNaN(got[h])).toBe(true);
      else if (got[h] !== want) throw new Error(`fp16 0x${h.toString(16)}: got ${got[h]}, want ${want}`);
    }
  });
});

describe('dtype helpers', () => {
  it('knows byte sizes and loaded dtypes', () => {
    expect(dtypeByteSize('F32')).toBe(4);
    expect(dtypeByteSize('BF16')).toBe(2);
    expect(dtypeByteSize('F16')).toBe(2);
    expect(dtypeByteSize('I64')).toBe(8);
    expect(dtypeByteSize('I32')).toBe(4);
    expect(dtypeByteSize('I8')).toBe(1);
    expect(dtypeByteSize('U8')).toBe(1);
    expect(dtypeByteSize('BOOL')).toBe(1);
    expect(loadedDtypeOf('BF16')).toBe('float32');
    expect(loadedDtypeOf('BOOL')).toBe('int32');
  });

  it('recognises only safetensors dtype names', () => {
    expect(isSafetensorsDtype('F16')).toBe(true);
    expect(isSafetensorsDtype('f16')).toBe(false);
    expect(isSafetensorsDtype('toString')).toBe(false);
    expect(isSafetensorsDtype('F64')).toBe(false);
    expect(isSafetensorsDtype(3)).toBe(false);
  });
});

describe('float32ToFp16Bits (GGML_FP32_TO_FP16: round to nearest even)', () => {
  it('maps every fp16 value back to its bits, subnormals and infinities included', () => {
    for (let h = 0; h < 65536; h++) {
      const v = fp16BitsToFloat32(h);
      if (Number.isNaN(v)) continue;
      expect(float32ToFp16Bits(v), `bits ${h.toString(16)}`).toBe(h === 0x8000 ? 0x8000 : h);
    }
  });
  it('rounds halfway cases to even, overflows to inf, underflows to zero', () => {
    // 1 + 2⁻¹¹ lies halfway between 1 and 1 + 2⁻¹⁰: the even one is 1.
    expect(float32ToFp16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3·2⁻¹¹ lies halfway between 1 + 2⁻¹⁰ and 1 + 2·2⁻¹⁰: the even one is the upper.
    expect(float32ToFp16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToFp16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    expect(float32ToFp16Bits(65520)).toBe(0x7c00);
    expect(float32ToFp16Bits(65519)).toBe(0x7bff);
    expect(float32ToFp16Bits(2 ** -25)).toBe(0);
    expect(float32ToFp16Bits(1.5 * 2 ** -25)).toBe(1);
    expect(float32ToFp16Bits(-3 * 2 ** -24)).toBe(0x8003);
    expect(Number.isNaN(fp16BitsToFloat32(float32ToFp16Bits(NaN)))).toBe(true);
  });
});

describe('float32ToBf16', () => {
  it('is exact for bf16 values and rounds others to nearest even', () => {
    const src = new Float32Array([1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, Infinity]);
    const out = float32ToBf16(src);
    expect(Array.from(bf16ToFloat32(out))).toEqual([1, -2.5, 1, 1 + 2 ** -6, 1 + 2 ** -7, Infinity]);
  });
});
