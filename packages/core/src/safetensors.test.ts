import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CheckpointError } from './errors.js';
import { SafetensorsFile } from './safetensors.js';
import { encodeSafetensors, writeSafetensors } from './safetensors-write.js';
import type { LoadedTensor } from './tensor-decode.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures', import.meta.url));

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-safetensors-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

function open(name: string, bytes: Uint8Array): SafetensorsFile {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return SafetensorsFile.open(p);
}

/** A file with the given header text verbatim and `dataBytes` zero bytes of data. */
function rawFile(name: string, header: string, dataBytes = 0): string {
  const json = Buffer.from(header, 'utf8');
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  const p = path.join(tmp, name);
  fs.writeFileSync(p, out);
  return p;
}

/** Bytes asked for by recorded `readSync(fd, buffer, offset, length, position)` calls. */
function requested(calls: unknown[][]): number {
  return calls.reduce((n: number, c) => n + (c[3] as number), 0);
}

/** Elements of `t` at row-major index `[...]`, for comparing slices by hand. */
function slice(t: LoadedTensor, dim: number, start: number, length: number): number[] {
  const outer = t.shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = t.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const size = t.shape[dim]!;
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    const base = (o * size + start) * inner;
    for (let i = 0; i < length * inner; i++) out.push(t.data[base + i]!);
  }
  return out;
}

describe('SafetensorsFile on the fixtures', () => {
  it('reads llama-tiny F32 values exactly', () => {
    const f = SafetensorsFile.open(path.join(FIXTURES, 'llama-tiny/model.safetensors'));
    const t = f.read('model.embed_tokens.weight');
    expect(t.dtype).toBe('float32');
    expect(t.shape).toEqual([512, 128]);
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(Array.from(t.data.subarray(0, 4))).toEqual(
      [-0.12204767018556595, -0.060018543154001236, -0.052318472415208817, -0.1287587732076645],
    );
    expect(t.data[128 * 5 + 7]).toBe(0.07556696981191635);
    expect(f.metadata).toEqual({ format: 'pt' });
    f.close();
  });

  it('widens llama-bf16 BF16 values exactly', () => {
    const f = SafetensorsFile.open(path.join(FIXTURES, 'llama-bf16/model.safetensors'));
    expect(f.info('model.embed_tokens.weight')).toEqual({ dtype: 'BF16', shape: [512, 128], byteLength: 512 * 128 * 2 });
    const t = f.read('model.embed_tokens.weight');
    expect(t.dtype).toBe('float32');
    expect(Array.from(t.data.subarray(0, 4))).toEqual([-0.006134033203125, 0.02880859375, -0.0625, 0.0057373046875]);
    expect(t.data[128 * 5 + 7]).toBe(-0.01007080078125);
    let sum = 0;
    for (const v of t.data) sum += v;
    expect(sum).toBeCloseTo(59.37386168539524, 9);
    f.close();
  });

  it('narrows dims 0 and 1 to the same values as slicing the full tensor', () => {
    for (const fixture of ['llama-tiny', 'llama-bf16', 'deepseek-v3-tiny']) {
      const f = SafetensorsFile.open(path.join(FIXTURES, fixture, 'model.safetensors'));
      for (const name of f.names()) {
        const full = f.read(name);
        for (let dim = 0; dim < full.shape.length; dim++) {
          const size = full.shape[dim]!;
          for (const [start, length] of [
            [0, size],
            [0, Math.ceil(size / 4)],
            [Math.floor(size / 3), Math.floor(size / 2)],
            [size - 1, 1],
            [size, 0],
          ] as const) {
            const part = f.narrow(name, dim, start, length);
            const shape = [...full.shape];
            shape[dim] = length;
            expect(part.shape).toEqual(shape);
            expect(part.dtype).toBe(full.dtype);
            const want = slice(full, dim, start, length);
            expect(part.data.length).toBe(want.length);
            expect(part.data.findIndex((v, i) => !Object.is(v, want[i])), `${name} dim ${dim} [${start}, +${length})`).toBe(-1);
          }
        }
      }
      f.close();
    }
  });

  it('lists names and throws on unknown names, naming tensor and file', () => {
    const p = path.join(FIXTURES, 'llama-tiny/model.safetensors');
    const f = SafetensorsFile.open(p);
    expect(f.names()).toContain('lm_head.weight');
    expect(f.has('lm_head.weight')).toBe(true);
    expect(f.has('nope')).toBe(false);
    expect(() => f.read('nope.weight')).toThrow(CheckpointError);
    expect(() => f.read('nope.weight')).toThrow(/llama-tiny\/model\.safetensors.*'nope\.weight'/);
    expect(() => f.info('nope.weight')).toThrow(/'nope\.weight'/);
    f.close();
    expect(() => f.read('lm_head.weight')).toThrow(/read after close/);
  });
});

describe('SafetensorsFile reads only what it needs', () => {
  it('open reads only the length prefix and the header', () => {
    const p = path.join(FIXTURES, 'llama-tiny/model.safetensors');
    const spy = vi.spyOn(fs, 'readSync');
    const f = SafetensorsFile.open(p);
    const total = requested(spy.mock.calls);
    expect(total).toBe(8 + 4112);
    f.close();
  });

  it('narrow on dim 0 reads one contiguous range of exactly the slice', () => {
    const f = SafetensorsFile.open(path.join(FIXTURES, 'llama-tiny/model.safetensors'));
    const spy = vi.spyOn(fs, 'readSync');
    f.narrow('model.layers.0.mlp.gate_proj.weight', 0, 86, 86); // [344, 128] F32
    expect(spy).toHaveBeenCalledTimes(1);
    expect(requested(spy.mock.calls)).toBe(86 * 128 * 4);
    f.close();
  });

  it('narrow on dim 1 never reads the whole tensor for a sparse slice', () => {
    const f = SafetensorsFile.open(path.join(FIXTURES, 'llama-tiny/model.safetensors'));
    const spy = vi.spyOn(fs, 'readSync');
    f.narrow('model.layers.0.mlp.down_proj.weight', 1, 43, 43); // [128, 344], an eighth of each row
    const total = requested(spy.mock.calls);
    expect(total).toBe(128 * 43 * 4);
    spy.mockClear();
    f.narrow('model.layers.0.mlp.down_proj.weight', 1, 0, 172); // half of each row: windowed
    const windowed = requested(spy.mock.calls);
    expect(windowed).toBeLessThan(128 * 344 * 4);
    f.close();
  });
});

describe('SafetensorsFile dtypes', () => {
  it('loads F16, BF16, I64, I32, I8, U8 and BOOL', () => {
    const f = open(
      'dtypes.safetensors',
      encodeSafetensors(
        {
          f16: { dtype: 'F16', shape: [2, 3], data: Uint16Array.of(0x3c00, 0xc000, 0x0001, 0x7c00, 0x3800, 0x8000) },
          bf16: { dtype: 'BF16', shape: [2], data: Uint16Array.of(0x3f80, 0xc040) },
          f32: { dtype: 'F32', shape: [1, 2], data: Float32Array.of(1.5, -0.25) },
          i64: { dtype: 'I64', shape: [4], data: BigInt64Array.of(0n, -1n, 2147483647n, -2147483648n) },
          i32: { dtype: 'I32', shape: [2, 2], data: Int32Array.of(1, -2, 3, -4) },
          i8: { dtype: 'I8', shape: [3], data: Int8Array.of(-128, 0, 127) },
          u8: { dtype: 'U8', shape: [3], data: Uint8Array.of(0, 128, 255) },
          bool: { dtype: 'BOOL', shape: [3], data: Uint8Array.of(1, 0, 1) },
          scalar: { dtype: 'F32', shape: [], data: Float32Array.of(7) },
          empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
        },
        { format: 'pt', note: 'hand made' },
      ),
    );
    const values = (n: string) => Array.from(f.read(n).data);
    expect(values('f16')).toEqual([1, -2, 2 ** -24, Infinity, 0.5, -0]);
    expect(values('bf16')).toEqual([1, -3]);
    expect(values('f32')).toEqual([1.5, -0.25]);
    expect(values('i64')).toEqual([0, -1, 2147483647, -2147483648]);
    expect(values('i32')).toEqual([1, -2, 3, -4]);
    expect(values('i8')).toEqual([-128, 0, 127]);
    expect(values('u8')).toEqual([0, 128, 255]);
    expect(values('bool')).toEqual([1, 0, 1]);
    expect(f.read('scalar')).toEqual({ shape: [], dtype: 'float32', data: Float32Array.of(7) });
    expect(f.read('empty').shape).toEqual([0, 4]);
    for (const n of ['i64', 'i32', 'i8', 'u8', 'bool']) {
      expect(f.read(n).dtype).toBe('int32');
      expect(f.read(n).data).toBeInstanceOf(Int32Array);
    }
    expect(f.read('f16').data).toBeInstanceOf(Float32Array);
    expect(Array.from(f.narrow('f16', 1, 1, 2).data)).toEqual([-2, 2 ** -24, 0.5, -0]);
    expect(Array.from(f.narrow('i64', 0, 2, 2).data)).toEqual([2147483647, -2147483648]);
    expect(f.metadata).toEqual({ format: 'pt', note: 'hand made' });
    f.close();
  });

  it('rejects I64 values outside int32, naming the tensor', () => {
    const f = open(
      'i64-big.safetensors',
      encodeSafetensors({ ids: { dtype: 'I64', shape: [3], data: BigInt64Array.of(1n, 2n ** 31n, 3n) } }),
    );
    expect(() => f.read('ids')).toThrow(CheckpointError);
    expect(() => f.read('ids')).toThrow(/'ids'.*2147483648.*int32/);
    expect(Array.from(f.narrow('ids', 0, 0, 1).data)).toEqual([1]);
    f.close();
    const g = open('i64-neg.safetensors', encodeSafetensors({ ids: { dtype: 'I64', shape: [1], data: BigInt64Array.of(-(2n ** 40n)) } }));
    expect(() => g.read('ids')).toThrow(/-1099511627776/);
    g.close();
  });

  it('validates narrow arguments, naming tensor and shape', () => {
    const f = SafetensorsFile.open(path.join(FIXTURES, 'llama-tiny/model.safetensors'));
    const name = 'model.layers.0.self_attn.k_proj.weight'; // [32, 128]
    expect(() => f.narrow(name, 2, 0, 1)).toThrow(/k_proj.*dim 2 of shape \[32, 128\]/);
    expect(() => f.narrow(name, -1, 0, 1)).toThrow(CheckpointError);
    expect(() => f.narrow(name, 0, 30, 3)).toThrow(/k_proj.*start 30, length 3.*\[0, 32\).*\[32, 128\]/);
    expect(() => f.narrow(name, 0, -1, 1)).toThrow(CheckpointError);
    expect(() => f.narrow(name, 0, 0.5, 1)).toThrow(CheckpointError);
    expect(() => f.narrow(name, 1, 0, -1)).toThrow(CheckpointError);
    f.close();
  });
});

describe('SafetensorsFile header validation', () => {
  const ok = (extra = '') => `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}${extra}}`;

  it('accepts a well-formed hand-written header with __metadata__ and trailing spaces', () => {
    const f = SafetensorsFile.open(rawFile('ok.safetensors', `{"__metadata__":{"x":"y"},${ok().slice(1)}    `, 8));
    expect(f.names()).toEqual(['a']);
    f.close();
  });

  const cases: [string, () => string, RegExp][] = [
    ['an empty file', () => (fs.writeFileSync(path.join(tmp, 'empty.st'), ''), path.join(tmp, 'empty.st')), /0 bytes, shorter than the 8-byte/],
    ['a 5-byte file', () => (fs.writeFileSync(path.join(tmp, 'five.st'), 'abcde'), path.join(tmp, 'five.st')), /5 bytes, shorter than/],
    ['a header length past the end', () => {
      const p = rawFile('long.st', ok(), 8);
      const b = fs.readFileSync(p);
      b.writeBigUInt64LE(10_000n, 0);
      fs.writeFileSync(p, b);
      return p;
    }, /header length 10000 bytes runs past the end/],
    ['a huge header length', () => {
      const p = rawFile('huge.st', ok(), 8);
      const b = fs.readFileSync(p);
      b.writeBigUInt64LE(2n ** 63n, 0);
      fs.writeFileSync(p, b);
      return p;
    }, /over the 104857600-byte limit/],
    ['malformed JSON', () => rawFile('badjson.st', '{"a":', 0), /header is not valid JSON/],
    ['invalid UTF-8', () => {
      const p = rawFile('utf8.st', '{"a":1}', 0);
      const b = fs.readFileSync(p);
      b[10] = 0xff;
      fs.writeFileSync(p, b);
      return p;
    }, /header is not valid UTF-8/],
    ['a JSON array', () => rawFile('array.st', '[1,2]'), /must be a JSON object, got \[1,2\]/],
    ['JSON null', () => rawFile('null.st', 'null'), /must be a JSON object, got null/],
    ['an unknown dtype', () => rawFile('dtype.st', '{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}', 8), /tensor 'w' has unsupported dtype "F64" \(supported: F32, F16/],
    ['a negative shape', () => rawFile('neg.st', '{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4), /'w' has bad shape \[-1\]/],
    ['a fractional shape', () => rawFile('frac.st', '{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 4), /'w' has bad shape/],
    ['a missing shape', () => rawFile('noshape.st', '{"w":{"dtype":"F32","data_offsets":[0,4]}}', 4), /'w' has bad shape nothing/],
    ['bad offsets', () => rawFile('offs.st', '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', 4), /'w' has bad data_offsets \[0\]/],
    ['begin after end', () => rawFile('rev.st', '{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', 4), /begin after end/],
    ['a size mismatch', () => rawFile('size.st', '{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}', 8), /'w': shape \[3\] of BF16 needs 6 bytes but data_offsets \[0, 8\] hold 8/],
    ['an overflowing shape', () => rawFile('ovf.st', '{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', 8), /'w': shape/],
    ['offsets outside the data', () => rawFile('out.st', '{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8), /'w': data_offsets \[0, 16\] run past the 8-byte data section/],
    ['overlapping tensors', () => rawFile('overlap.st', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', 12), /'a' \[0, 8\) and 'b' \[4, 12\) overlap/],
    ['a non-object tensor entry', () => rawFile('entry.st', '{"w":[1,2]}'), /tensor 'w' must be described by an object/],
    ['non-string metadata', () => rawFile('meta.st', '{"__metadata__":{"n":1}}'), /__metadata__\.n must be a string/],
    ['deeply nested JSON', () => rawFile('deep.st', '['.repeat(200_000)), /not valid JSON|must be a JSON object/],
  ];
  for (const [what, make, message] of cases) {
    it(`rejects ${what} with a CheckpointError naming the file`, () => {
      const p = make();
      let caught: unknown;
      try {
        SafetensorsFile.open(p).close();
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(CheckpointError);
      expect((caught as Error).message).toContain(p);
      expect((caught as Error).message).toMatch(message);
    });
  }

  it('detects a file truncated after open', () => {
    const p = path.join(tmp, 'shrinks.safetensors');
    writeSafetensors(p, { w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    const f = SafetensorsFile.open(p);
    fs.truncateSync(p, fs.statSync(p).size - 4);
    expect(() => f.read('w')).toThrow(/truncated/);
    f.close();
  });

  it('rejects a missing file and a directory', () => {
    expect(() => SafetensorsFile.open(path.join(tmp, 'absent.safetensors'))).toThrow(/absent\.safetensors: cannot open/);
    expect(() => SafetensorsFile.open(tmp)).toThrow(CheckpointError);
  });
});
