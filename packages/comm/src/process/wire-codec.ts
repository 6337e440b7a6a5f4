/**
 * Driver ↔ rank messages between processes: JSON with typed arrays carried
 * raw beside it (logits are Float32Arrays). Nothing is ever evaluated; a
 * typed array is a JSON placeholder {"\u0000ta": index, "t": "f32"|"i32"|"u8"}.
 * Layout: u32 JSON length, JSON, then per array u32 type, u32 byte length, bytes (4-aligned).
 */
import { WeftError } from '@weft/core';

const KEY = '\u0000ta';
const TYPES = ['f32', 'i32', 'u8'] as const;
const enc = new TextEncoder();
const dec = new TextDecoder();
const pad4 = (n: number) => (n + 3) & ~3;

export function encodeMessage(value: unknown): Uint8Array {
  const arrays: (Float32Array | Int32Array | Uint8Array)[] = [];
  const json = JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array) {
      arrays.push(v);
      return { [KEY]: arrays.length - 1, t: v instanceof Float32Array ? 'f32' : v instanceof Int32Array ? 'i32' : 'u8' };
    }
    if (ArrayBuffer.isView(v)) throw new WeftError(`cannot send a ${v.constructor.name} between processes (Float32Array, Int32Array and Uint8Array can be)`);
    return v;
  }) ?? 'null';
  const jb = enc.encode(json);
  let size = 4 + pad4(jb.length);
  for (const a of arrays) size += 8 + pad4(a.byteLength);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, jb.length, true);
  out.set(jb, 4);
  let off = 4 + pad4(jb.length);
  for (const a of arrays) {
    dv.setUint32(off, a instanceof Float32Array ? 0 : a instanceof Int32Array ? 1 : 2, true);
    dv.setUint32(off + 4, a.byteLength, true);
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off + 8);
    off += 8 + pad4(a.byteLength);
  }
  return out;
}

export function decodeMessage(bytes: Uint8Array): unknown {
  const fail = (why: string) => new WeftError(`corrupt driver message: ${why}`);
  if (bytes.length < 4) throw fail('too short');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jl = dv.getUint32(0, true);
  if (4 + jl > bytes.length) throw fail('JSON length past the end');
  const arrays: (Float32Array | Int32Array | Uint8Array)[] = [];
  let off = 4 + pad4(jl);
  while (off < bytes.length) {
    if (off + 8 > bytes.length) throw fail('truncated array header');
    const type = dv.getUint32(off, true);
    const n = dv.getUint32(off + 4, true);
    if (type > 2 || off + 8 + n > bytes.length || (type < 2 && n % 4 !== 0)) throw fail('bad array');
    const copy = bytes.slice(off + 8, off + 8 + n);
    arrays.push(type === 0 ? new Float32Array(copy.buffer) : type === 1 ? new Int32Array(copy.buffer) : copy);
    off += 8 + pad4(n);
  }
  return JSON.parse(dec.decode(bytes.subarray(4, 4 + jl)), (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && KEY in v) {
      const { [KEY]: i, t } = v as Record<string, unknown>;
      const a = typeof i === 'number' ? arrays[i] : undefined;
      if (!a || TYPES[a instanceof Float32Array ? 0 : a instanceof Int32Array ? 1 : 2] !== t) throw fail(`bad array reference ${String(i)}`);
      return a;
    }
    return v;
  }) as unknown;
}
