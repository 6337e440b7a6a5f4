/**
 * Raw little-endian checkpoint bytes to the arrays weft computes with:
 * float dtypes become Float32Array, integer and bool dtypes Int32Array.
 */
import { endianness } from 'node:os';
import { CheckpointError, WeftError } from './errors.js';
import { type SafetensorsDtype, bf16ToFloat32, dtypeByteSize, fp16ToFloat32 } from './dtype.js';

/** A tensor read from a checkpoint, widened to float32 or int32. */
export interface LoadedTensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

const littleEndianHost = endianness() === 'LE';

/**
 * Decode `bytes` (whole elements of `dtype`, starting at offset 0 of their own
 * buffer so typed views are aligned). F32 and I32 reuse the buffer without a
 * copy. `what` names the tensor in errors.
 */
export function decodeTensor(bytes: Uint8Array, dtype: SafetensorsDtype, shape: number[], what: string): LoadedTensor {
  if (!littleEndianHost) throw new WeftError('safetensors loading needs a little-endian host');
  const numel = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== numel * dtypeByteSize(dtype)) {
    throw new CheckpointError(`${what}: got ${bytes.byteLength} bytes for shape [${shape.join(', ')}] of ${dtype}`);
  }
  const { buffer, byteOffset } = bytes;
  switch (dtype) {
    case 'F32':
      return { shape, dtype: 'float32', data: new Float32Array(buffer, byteOffset, numel) };
    case 'BF16':
      return { shape, dtype: 'float32', data: bf16ToFloat32(new Uint16Array(buffer, byteOffset, numel)) };
    case 'F16':
      return { shape, dtype: 'float32', data: fp16ToFloat32(new Uint16Array(buffer, byteOffset, numel)) };
    case 'I32':
      return { shape, dtype: 'int32', data: new Int32Array(buffer, byteOffset, numel) };
    case 'I64':
      return { shape, dtype: 'int32', data: narrowInt64(new Int32Array(buffer, byteOffset, numel * 2), what) };
    case 'I8':
      return { shape, dtype: 'int32', data: Int32Array.from(new Int8Array(buffer, byteOffset, numel)) };
    case 'U8':
      return { shape, dtype: 'int32', data: Int32Array.from(bytes) };
    case 'BOOL': {
      const out = new Int32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = bytes[i] === 0 ? 0 : 1;
      return { shape, dtype: 'int32', data: out };
    }
  }
}

/** int64 as (low, high) int32 word pairs; a value fits int32 exactly when high is low's sign extension. */
function narrowInt64(words: Int32Array, what: string): Int32Array {
  const out = new Int32Array(words.length / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = words[2 * i]!;
    const hi = words[2 * i + 1]!;
    if (hi !== lo >> 31) {
      const value = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
      throw new CheckpointError(`${what}: I64 value ${value} at index ${i} does not fit in int32`);
    }
    out[i] = lo;
  }
  return out;
}
