import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from './errors.js';
import { readFully, readStrided } from './file-read.js';

let tmp: string;
let file: string;
let fd: number;
const SIZE = 4096;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-read-'));
  file = path.join(tmp, 'bytes.bin');
  fs.writeFileSync(file, Uint8Array.from({ length: SIZE }, (_, i) => (i * 7 + 3) & 0xff));
  fd = fs.openSync(file, 'r');
});
afterAll(() => {
  fs.closeSync(fd);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function expected(base: number, rows: number, rowBytes: number, chunkBytes: number): Uint8Array {
  const out = new Uint8Array(rows * chunkBytes);
  for (let r = 0; r < rows; r++) for (let j = 0; j < chunkBytes; j++) out[r * chunkBytes + j] = ((base + r * rowBytes + j) * 7 + 3) & 0xff;
  return out;
}

describe('readStrided', () => {
  // [rows, rowBytes, chunkBytes, base]: sparse (per-row reads), dense in one window, dense over several windows.
  const shapes: [number, number, number, number][] = [
    [10, 100, 10, 5],
    [10, 100, 60, 5],
    [37, 96, 48, 17],
    [1, 300, 200, 0],
    [12, 64, 64, 0],
    [0, 64, 8, 0],
    [5, 64, 0, 0],
  ];
  for (const window of [64, 250, 1000, 1 << 20]) {
    for (const [rows, rowBytes, chunkBytes, base] of shapes) {
      it(`gathers ${rows} x ${chunkBytes} of ${rowBytes}-byte rows with a ${window}-byte window`, () => {
        const out = new Uint8Array(rows * chunkBytes);
        readStrided(fd, file, out, { base, rows, rowBytes, chunkBytes }, window);
        expect(out).toEqual(expected(base, rows, rowBytes, chunkBytes));
      });
    }
  }
});

describe('readFully', () => {
  it('reads exact ranges and names the file when it runs out', () => {
    const out = new Uint8Array(16);
    readFully(fd, out, SIZE - 16, file);
    expect(out).toEqual(expected(SIZE - 16, 1, 16, 16));
    expect(() => readFully(fd, new Uint8Array(32), SIZE - 16, file)).toThrow(CheckpointError);
    expect(() => readFully(fd, new Uint8Array(32), SIZE - 16, file)).toThrow(/bytes\.bin: file ends at byte 4096, expected 16 more/);
  });
});
