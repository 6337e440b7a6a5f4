/**
 * Checkpoint dtypes and their conversion to the two dtypes weft computes in
 * (float32, int32). Safetensors stores everything little-endian.
 */

/** The safetensors dtypes weft can load. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'I8' | 'U8' | 'BOOL';

export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16', 'I32', 'I64', 'I8', 'U8', 'BOOL'];

const BYTE_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, I8: 1, U8: 1, BOOL: 1 };

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(BYTE_SIZE, value);
}

/** Bytes per element of a safetensors dtype. */
export function dtypeByteSize(dtype: SafetensorsDtype): number {
  return BYTE_SIZE[dtype];
}

/** The dtype a tensor of this checkpoint dtype is loaded as. */
export function loadedDtypeOf(dtype: SafetensorsDtype): 'float32' | 'int32' {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' ? 'float32' : 'int32';
}

/** bfloat16 is the top half of a float32, so widening is a 16-bit shift. */
export function bf16ToFloat32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length < src.length) throw new RangeError(`bf16ToFloat32: output holds ${out.length} values, input has ${src.length}`);
  const bits = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** One fp16 bit pattern to its float32 value (subnormals, ±inf and nan included). */
export function fp16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

let fp16Table: Float32Array | undefined;

/** All 65,536 fp16 values, built once: a table lookup beats bit twiddling per element. */
function fp16Lookup(): Float32Array {
  if (fp16Table === undefined) {
    fp16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) fp16Table[h] = fp16BitsToFloat32(h);
  }
  return fp16Table;
}

export function fp16ToFloat32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length < src.length) throw new RangeError(`fp16ToFloat32: output holds ${out.length} values, input has ${src.length}`);
  const table = fp16Lookup();
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** A number, rounded to float32, as fp16 bits, round to nearest even (GGML_FP32_TO_FP16, numpy's astype). */
export function float32ToFp16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // fp16 subnormal: m · 2⁻²⁴ with m = (1.mant) >> (14 − e).
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    if (rem > half || (rem === half && m & 1)) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa moves into the exponent, which is the right answer (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return h;
}

/** float32 values to bf16 bits, round to nearest even (torch's `.to(torch.bfloat16)`); exact for values that came from bf16. */
export function float32ToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length < src.length) throw new RangeError(`float32ToBf16: output holds ${out.length} values, input has ${src.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i]!;
    // NaN keeps a quiet NaN; otherwise add the rounding bias (0x7fff + lsb) and truncate.
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}
