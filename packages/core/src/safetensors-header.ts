/**
 * Parsing and validation of a safetensors header: an 8-byte little-endian
 * length, then that many bytes of JSON describing every tensor's dtype, shape
 * and byte range in the data section that follows. Nothing here trusts the
 * file: every size is checked before it is used to read or allocate.
 */
import { CheckpointError } from './errors.js';
import { type SafetensorsDtype, SAFETENSORS_DTYPES, dtypeByteSize, isSafetensorsDtype } from './dtype.js';

/** Larger headers are refused: real ones are a few MB at most, and this bounds what a corrupt length can allocate. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range within the data section, `[begin, end)`. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Bytes of JSON after the 8-byte length. */
  headerLength: number;
  /** Absolute file offset where the data section starts (8 + headerLength). */
  dataStart: number;
  dataLength: number;
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/**
 * The header length from the first 8 bytes, checked against the file size.
 * `prefix` is those 8 bytes (fewer when the file is shorter).
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new CheckpointError(`${file}: file is ${fileSize} bytes, shorter than the 8-byte safetensors header length`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(`${file}: header length ${length} bytes is over the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  }
  const n = Number(length);
  if (8 + n > fileSize) {
    throw new CheckpointError(`${file}: header length ${n} bytes runs past the end of the ${fileSize}-byte file (truncated or not a safetensors file)`);
  }
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parse and validate the JSON header bytes. `fileSize` bounds the data section. */
export function parseHeaderJson(json: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const headerLength = json.length;
  const dataStart = 8 + headerLength;
  const dataLength = fileSize - dataStart;
  let text: string;
  try {
    text = utf8.decode(json);
  } catch (cause) {
    throw new CheckpointError(`${file}: header is not valid UTF-8 (corrupt or not a safetensors file)`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new CheckpointError(`${file}: header is not valid JSON (${why})`, { cause });
  }
  if (!isPlainObject(parsed)) {
    throw new CheckpointError(`${file}: header must be a JSON object, got ${describe(parsed)}`);
  }

  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(raw, file);
      continue;
    }
    tensors.set(name, parseEntry(raw, name, dataLength, file));
  }
  checkNoOverlap(tensors, file);
  return { headerLength, dataStart, dataLength, tensors, metadata };
}

function parseMetadata(raw: unknown, file: string): Record<string, string> {
  if (!isPlainObject(raw)) throw new CheckpointError(`${file}: __metadata__ must be an object of strings, got ${describe(raw)}`);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') {
      throw new CheckpointError(`${file}: __metadata__.${key} must be a string, got ${describe(value)}`);
    }
    out[key] = value;
  }
  return out;
}

function parseEntry(raw: unknown, name: string, dataLength: number, file: string): TensorEntry {
  const where = `${file}: tensor '${name}'`;
  if (!isPlainObject(raw)) throw new CheckpointError(`${where} must be described by an object, got ${describe(raw)}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isSafetensorsDtype(dtype)) {
    throw new CheckpointError(`${where} has unsupported dtype ${describe(dtype)} (supported: ${SAFETENSORS_DTYPES.join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isSize)) {
    throw new CheckpointError(`${where} has bad shape ${describe(shape)} (want an array of non-negative integers)`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) {
    throw new CheckpointError(`${where} has bad data_offsets ${describe(offsets)} (want [begin, end] non-negative integers)`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new CheckpointError(`${where} has data_offsets [${begin}, ${end}] with begin after end`);
  let numel = 1;
  for (const d of shape as number[]) numel *= d;
  const byteLength = numel * dtypeByteSize(dtype);
  if (!Number.isSafeInteger(byteLength) || byteLength !== end - begin) {
    throw new CheckpointError(
      `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${byteLength} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  if (end > dataLength) {
    throw new CheckpointError(
      `${where}: data_offsets [${begin}, ${end}] run past the ${dataLength}-byte data section (file truncated?)`,
    );
  }
  return { dtype, shape: [...(shape as number[])], begin, end };
}

/** Two tensors sharing bytes means the header is corrupt; empty tensors share nothing. */
function checkNoOverlap(tensors: Map<string, TensorEntry>, file: string): void {
  const ranges = [...tensors].filter(([, t]) => t.end > t.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < ranges.length; i++) {
    const [prevName, prev] = ranges[i - 1]!;
    const [name, cur] = ranges[i]!;
    if (cur.begin < prev.end) {
      throw new CheckpointError(
        `${file}: tensors '${prevName}' [${prev.begin}, ${prev.end}) and '${name}' [${cur.begin}, ${cur.end}) overlap`,
      );
    }
  }
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
