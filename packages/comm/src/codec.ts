/**
 * Encodings for what is not a tensor: JSON objects as bytes (never eval), JSON
 * packed into an Int32Array so it can ride any Communicator, and errors
 * flattened for postMessage.
 */
import { CollectiveTimeoutError, ConfigError, WeftError } from '@weft/core';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON as UTF-8; an empty array stands for `undefined`. */
export function encodeJson(value: unknown): Uint8Array {
  if (value === undefined) return new Uint8Array(0);
  const text = JSON.stringify(value);
  if (text === undefined) throw new WeftError(`cannot send a ${typeof value} as JSON`);
  return encoder.encode(text);
}

export function decodeJson(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return undefined;
  return JSON.parse(decoder.decode(bytes)) as unknown;
}

/** JSON in an Int32Array: [byte length, bytes padded to 4]. */
export function packJson(value: unknown): Int32Array {
  const bytes = encodeJson(value);
  const out = new Int32Array(1 + Math.ceil(bytes.length / 4));
  out[0] = bytes.length;
  new Uint8Array(out.buffer, 4, bytes.length).set(bytes);
  return out;
}

export function unpackJson(packed: Int32Array): unknown {
  const n = packed[0];
  if (n === undefined || n < 0 || n > (packed.length - 1) * 4) throw new WeftError('corrupt packed JSON message');
  return decodeJson(new Uint8Array(packed.buffer, packed.byteOffset + 4, n));
}

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: 'Error', message: String(e) };
}

/** Rebuild an error thrown in a worker, as weft's own class when it was one. */
export function deserializeError(s: SerializedError): Error {
  const Cls =
    s.name === 'CollectiveTimeoutError' ? CollectiveTimeoutError : s.name === 'ConfigError' ? ConfigError : s.name === 'WeftError' ? WeftError : Error;
  const e = new Cls(s.message);
  if (Cls === Error && s.name !== 'Error') e.name = s.name;
  if (s.stack) e.stack = s.stack;
  return e;
}
