/**
 * IEEE half (fp16) and bfloat16 conversions, bit-exact with ggml's
 * GGML_FP32_TO_FP16 / GGML_FP16_TO_FP32 / GGML_FP32_TO_BF16 (round to nearest even).
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** fp32 → fp16 bits, round to nearest even; overflow to ±inf, NaN stays NaN. */
export function fp32ToFp16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // the half's biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is the right rounding (up to inf)
  return sign | h;
}

let table: Float32Array | undefined;

/** fp16 bits → fp32 value (a 256 KiB table built on first use). */
export function fp16Table(): Float32Array {
  if (table) return table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return (table = t);
}

export function fp16ToFp32(bits: number): number {
  return fp16Table()[bits & 0xffff]!;
}

/** fp32 → bf16 bits, round to nearest even (NaN kept quiet), as ggml's GGML_FP32_TO_BF16. */
export function fp32ToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 64) & 0xffff;
  return ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16) & 0xffff;
}

export function bf16ToFp32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** A whole fp32 array as bf16 bits. */
export function toBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < s.length; i++) {
    const x = s[i]!;
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? ((x >>> 16) | 64) & 0xffff : ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16) & 0xffff;
  }
  return out;
}

/** bf16 bits → fp32 (exact). */
export function fromBf16(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return new Float32Array(out.buffer);
}
