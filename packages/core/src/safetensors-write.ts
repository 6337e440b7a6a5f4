/**
 * Writing safetensors files: small checkpoints for tests and tools. Tensors
 * are written in the order given, each `data` as its raw little-endian bytes.
 */
import fs from 'node:fs';
import { CheckpointError } from './errors.js';
import { type SafetensorsDtype, dtypeByteSize } from './dtype.js';

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw element bytes (e.g. a Uint16Array of bf16 bits for BF16, a BigInt64Array for I64). */
  data: ArrayBufferView;
}

/** The bytes of a safetensors file holding `tensors`; the header is space-padded to 8 bytes like the reference writer. */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header['__metadata__'] = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const want = t.shape.reduce((a, b) => a * b, 1) * dtypeByteSize(t.dtype);
    if (t.data.byteLength !== want) {
      throw new CheckpointError(`tensor '${name}': shape [${t.shape.join(', ')}] of ${t.dtype} needs ${want} bytes, data has ${t.data.byteLength}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + want] };
    offset += want;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const withSpaces = new Uint8Array(padded).fill(0x20);
    withSpaces.set(json);
    json = withSpaces;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  fs.writeFileSync(path, encodeSafetensors(tensors, metadata));
}
