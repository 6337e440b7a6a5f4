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
