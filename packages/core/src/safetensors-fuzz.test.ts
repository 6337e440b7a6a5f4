/**
 * Corrupted safetensors files, generated from a seeded PRNG: every one must
 * either open and read data of the size its header promises, or throw a
 * CheckpointError. Never another exception type, never a hang, never an
 * allocation larger than the file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dtypeByteSize } from './dtype.js';
import { CheckpointError } from './errors.js';
import { SafetensorsFile } from './safetensors.js';
import { encodeSafetensors } from './safetensors-write.js';

/** mulberry32: small, fast, and the same sequence on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(0x5eed);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

function xor(b: Uint8Array, at: number, mask: number): void {
  b[at] = b[at]! ^ mask;
}

function validFile(): Uint8Array {
  return encodeSafetensors(
    {
      'model.embed.weight': { dtype: 'F32', shape: [4, 6], data: Float32Array.from({ length: 24 }, (_, i) => i / 7) },
      'model.norm.weight': { dtype: 'BF16', shape: [6], data: Uint16Array.of(0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0) },
      'model.half': { dtype: 'F16', shape: [2, 3], data: Uint16Array.of(0x3c00, 0x4000, 0x0001, 0x7c00, 0x7e00, 0x8000) },
      ids: { dtype: 'I64', shape: [3], data: BigInt64Array.of(5n, -7n, 9n) },
      mask: { dtype: 'BOOL', shape: [2, 2], data: Uint8Array.of(1, 0, 0, 1) },
      small: { dtype: 'I8', shape: [3], data: Int8Array.of(-3, 0, 3) },
      bytes: { dtype: 'U8', shape: [2], data: Uint8Array.of(200, 1) },
      count: { dtype: 'I32', shape: [1], data: Int32Array.of(42) },
    },
    { format: 'pt' },
  );
}

const BAD_VALUES: readonly unknown[] = [
  -1, 1.5, 2 ** 53, 1e308, 'F32', null, true, [], {}, [1, 2, 3], 'BF16', 'F64', 'i32', '', 0, 4294967296,
];

/** A header built from a valid one with one field replaced by something odd. */
function mutatedHeaderJson(): string {
  const header: Record<string, Record<string, unknown>> = {
    a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
    b: { dtype: 'F16', shape: [4], data_offsets: [16, 24] },
    c: { dtype: 'I64', shape: [1], data_offsets: [24, 32] },
  };
  const victim = header[pick(['a', 'b', 'c'])]!;
  switch (int(7)) {
    case 0:
      victim['dtype'] = pick(['F64', 'f32', 'U16', 'BF8', 'F8_E4M3', '', 'I16', 'BOOL', 'U8', 'I8', ...BAD_VALUES]);
      break;
    case 1:
      victim['shape'] = pick([[-2, 2], [2.5], [2 ** 31, 2 ** 31, 8], ['2'], null, 4, [], [0], [1, 1, 1, 1], ...BAD_VALUES]);
      break;
    case 2:
      victim['data_offsets'] = pick([[0, 8], [8, 0], [0, 24], [16, 32], [0, 2 ** 53], [-8, 8], [0], [0, 8, 16], null, ...BAD_VALUES]);
      break;
    case 3: // overlap or gap
      victim['data_offsets'] = [int(32), 0];
      (victim['data_offsets'] as number[])[1] = (victim['data_offsets'] as number[])[0]! + pick([0, 8, 16]);
      break;
    case 4:
      delete victim[pick(['dtype', 'shape', 'data_offsets'])];
      break;
    case 5:
      (header as Record<string, unknown>)['__metadata__'] = pick([{ a: 'b' }, { a: 1 }, 'x', null, [], { format: 'pt' }]);
      break;
    default:
      (header as Record<string, unknown>)[pick(['a', 'zz', '__proto__', 'constructor'])] = pick(BAD_VALUES);
  }
  return JSON.stringify(header);
}

const BAD_JSON: readonly string[] = [
  '',
  ' ',
  '{',
  '}',
  '{"a":}',
  '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}',
  '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}',
  "{'a': 1}",
  'null',
  '42',
  '"str"',
  'true',
  '[]',
  '{"a":NaN}',
  '{"a":1e999999}',
  '\u0000{}',
  '['.repeat(50_000),
  '{"a":'.repeat(20_000),
];

interface Case {
  what: string;
  bytes: Uint8Array;
}

function withLength(json: Uint8Array, length: bigint, dataBytes: number): Uint8Array {
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, length, true);
  out.set(json, 8);
  return out;
}

function cases(): Case[] {
  const base = validFile();
  const headerEnd = 8 + Number(new DataView(base.buffer).getBigUint64(0, true));
  const out: Case[] = [];
  for (let i = 0; i < 300; i++) {
    const b = base.slice();
    const flips = 1 + int(4);
    for (let k = 0; k < flips; k++) xor(b, int(headerEnd), 1 << int(8));
    out.push({ what: `header bit flips #${i}`, bytes: b });
  }
  for (let i = 0; i < 150; i++) {
    const b = base.slice();
    b[int(headerEnd)] = int(256);
    out.push({ what: `header byte replaced #${i}`, bytes: b });
  }
  for (let i = 0; i < 150; i++) out.push({ what: `truncated #${i}`, bytes: base.slice(0, int(base.length)) });
  for (let i = 0; i < 100; i++) {
    const b = base.slice();
    xor(b, headerEnd + int(base.length - headerEnd), 0xff);
    out.push({ what: `data byte flip #${i}`, bytes: b });
  }
  const json = base.slice(8, headerEnd);
  for (const len of [0n, 1n, 7n, BigInt(json.length - 1), BigInt(json.length + 1), BigInt(base.length), 2n ** 27n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n]) {
    out.push({ what: `length field ${len}`, bytes: withLength(json, len, base.length - headerEnd) });
  }
  for (let i = 0; i < 100; i++) {
    const len = BigInt(int(2 ** 30)) * BigInt(1 + int(2 ** 20));
    out.push({ what: `random length field ${len}`, bytes: withLength(json, len, base.length - headerEnd) });
  }
  for (const [i, text] of BAD_JSON.entries()) {
    out.push({ what: `bad json #${i}`, bytes: withLength(new TextEncoder().encode(text), BigInt(Buffer.byteLength(text)), 32) });
  }
  for (let i = 0; i < 300; i++) {
    const text = mutatedHeaderJson();
    out.push({ what: `mutated header #${i}: ${text}`, bytes: withLength(new TextEncoder().encode(text), BigInt(Buffer.byteLength(text)), pick([0, 16, 32, 40])) });
  }
  for (let i = 0; i < 50; i++) {
    const noise = Uint8Array.from({ length: int(64) }, () => int(256));
    out.push({ what: `random bytes #${i}`, bytes: noise });
  }
  return out;
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-fuzz-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Open and read everything; return how many tensors were read, or the CheckpointError. */
function exercise(file: string, size: number): number | CheckpointError {
  let f: SafetensorsFile | undefined;
  try {
    f = SafetensorsFile.open(file);
    let n = 0;
    for (const name of f.names()) {
      const info = f.info(name);
      expect(info.byteLength).toBeLessThanOrEqual(size);
      const numel = info.shape.reduce((a, b) => a * b, 1);
      expect(info.byteLength).toBe(numel * dtypeByteSize(info.dtype));
      try {
        const t = f.read(name);
        expect(t.shape).toEqual(info.shape);
        expect(t.data.length).toBe(numel);
        if (info.shape.length > 0 && info.shape[0]! > 0) {
          const part = f.narrow(name, 0, 0, 1);
          expect(part.data.length).toBe(numel / info.shape[0]!);
        }
      } catch (err) {
        // A flipped I64 may no longer fit int32; that is the only read error a header-valid file may give.
        if (!(err instanceof CheckpointError && /does not fit in int32/.test(err.message))) throw err;
      }
      n++;
    }
    return n;
  } catch (err) {
    if (err instanceof CheckpointError) return err;
    throw err;
  } finally {
    f?.close();
  }
}

describe('safetensors fuzz battery', () => {
  it('every corrupted file opens and reads correctly sized data, or throws a CheckpointError', () => {
    const all = cases();
    expect(all.length).toBeGreaterThan(1000);
    let opened = 0;
    let rejected = 0;
    const heapBefore = process.memoryUsage().arrayBuffers;
    for (const [i, c] of all.entries()) {
      const p = path.join(tmp, `case-${i}.safetensors`);
      fs.writeFileSync(p, c.bytes);
      let result: number | CheckpointError;
      try {
        result = exercise(p, c.bytes.length);
      } catch (err) {
        throw new Error(`${c.what}: threw ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
      }
      if (result instanceof CheckpointError) {
        expect(result.message, c.what).toContain(p);
        rejected++;
      } else opened++;
      fs.rmSync(p);
    }
    // Both outcomes must actually occur, or the battery is not testing anything.
    expect(opened).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(500);
    expect(process.memoryUsage().arrayBuffers - heapBefore).toBeLessThan(256 * 1024 * 1024);
  });
});
