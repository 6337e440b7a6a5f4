/**
 * Positioned synchronous reads of exactly the bytes wanted, for loading
 * checkpoint tensors (or slices of them) without reading whole files.
 */
import fs from 'node:fs';
import { CheckpointError } from './errors.js';

/** Gathers of strided slices read windows of at most this many bytes, then copy out the wanted pieces. */
const WINDOW_BYTES = 16 * 1024 * 1024;
/** Node's readSync takes at most 2 GiB - 1 per call. */
const MAX_READ = 1024 * 1024 * 1024;

export interface Strided {
  /** Absolute file offset of the first wanted byte. */
  base: number;
  rows: number;
  /** Distance between consecutive rows' wanted bytes. */
  rowBytes: number;
  /** Wanted bytes per row. */
  chunkBytes: number;
}

/**
 * Gather `rows` chunks of `chunkBytes`, `rowBytes` apart, into `out`. Dense
 * gathers (chunks at least a quarter of each row) read whole windows and copy
 * the chunks out; sparse ones read each chunk alone, so a tp=8 column shard
 * reads an eighth of the tensor, not all of it.
 */
export function readStrided(fd: number, file: string, out: Uint8Array, s: Strided, windowBytes = WINDOW_BYTES): void {
  const { base, rows, rowBytes, chunkBytes } = s;
  if (chunkBytes === 0 || rows === 0) return;
  if (rows === 1 || chunkBytes === rowBytes) {
    readFully(fd, out, base, file);
    return;
  }
  const dense = chunkBytes * 4 >= rowBytes;
  const perWindow = dense ? Math.max(1, Math.floor(windowBytes / rowBytes)) : 1;
  let scratch: Uint8Array | undefined;
  for (let r0 = 0; r0 < rows; r0 += perWindow) {
    const n = Math.min(perWindow, rows - r0);
    const at = base + r0 * rowBytes;
    if (n === 1) {
      readFully(fd, out.subarray(r0 * chunkBytes, (r0 + 1) * chunkBytes), at, file);
      continue;
    }
    const span = (n - 1) * rowBytes + chunkBytes;
    if (scratch === undefined || scratch.length < span) scratch = new Uint8Array(span);
    const window = scratch.subarray(0, span);
    readFully(fd, window, at, file);
    for (let i = 0; i < n; i++) {
      out.set(window.subarray(i * rowBytes, i * rowBytes + chunkBytes), (r0 + i) * chunkBytes);
    }
  }
}

/** Fill `target` from `position`, looping over short reads; running out of file is a truncation. */
export function readFully(fd: number, target: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(target.length - done, MAX_READ);
    let n: number;
    try {
      n = fs.readSync(fd, target, done, want, position + done);
    } catch (cause) {
      throw new CheckpointError(`${file}: read of ${want} bytes at ${position + done} failed (${(cause as Error).message})`, { cause });
    }
    if (n === 0) {
      throw new CheckpointError(`${file}: file ends at byte ${position + done}, expected ${target.length - done} more (truncated?)`);
    }
    done += n;
  }
}
