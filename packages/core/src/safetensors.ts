/**
 * One safetensors file, read lazily: `open` reads only the header; `read` and
 * `narrow` read only the bytes of the tensor (or slice) asked for, so a rank
 * loading its shard of a large checkpoint never touches the other shards'
 * bytes.
 */
import fs from 'node:fs';
import { CheckpointError } from './errors.js';
import { type SafetensorsDtype, dtypeByteSize } from './dtype.js';
import { type SafetensorsHeader, type TensorEntry, parseHeaderJson, parseHeaderLength } from './safetensors-header.js';
import { type LoadedTensor, decodeTensor } from './tensor-decode.js';
import { readFully, readStrided } from './file-read.js';

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  byteLength: number;
}

/** What weight loaders need from a checkpoint, whether one file or many shards. */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  read(name: string): LoadedTensor;
  /** `length` entries of `name` along `dim` starting at `start`; the other dims whole. */
  narrow(name: string, dim: number, start: number, length: number): LoadedTensor;
  close(): void;
}

export class SafetensorsFile implements TensorSource {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly header: SafetensorsHeader,
  ) {
    this.fd = fd;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (cause) {
      throw new CheckpointError(`${path}: cannot open safetensors file (${(cause as Error).message})`, { cause });
    }
    try {
      const size = fs.fstatSync(fd).size;
      const prefix = new Uint8Array(Math.min(8, size));
      readFully(fd, prefix, 0, path);
      const headerLength = parseHeaderLength(prefix, size, path);
      const json = new Uint8Array(headerLength);
      readFully(fd, json, 8, path);
      return new SafetensorsFile(path, fd, parseHeaderJson(json, size, path));
    } catch (err) {
      fs.closeSync(fd);
      if (err instanceof CheckpointError) throw err;
      throw new CheckpointError(`${path}: cannot read safetensors header (${(err as Error).message})`, { cause: err });
    }
  }

  /** The header's `__metadata__` (string to string), `{}` when absent. */
  get metadata(): Record<string, string> {
    return { ...this.header.metadata };
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.entry(name);
    return { dtype: t.dtype, shape: [...t.shape], byteLength: t.end - t.begin };
  }

  read(name: string): LoadedTensor {
    const t = this.entry(name);
    const bytes = new Uint8Array(t.end - t.begin);
    readFully(this.openFd(), bytes, this.header.dataStart + t.begin, this.path);
    return decodeTensor(bytes, t.dtype, [...t.shape], this.label(name));
  }

  narrow(name: string, dim: number, start: number, length: number): LoadedTensor {
    const t = this.entry(name);
    checkNarrow(t.shape, dim, start, length, this.label(name));
    const elem = dtypeByteSize(t.dtype);
    const outer = product(t.shape.slice(0, dim));
    const innerBytes = product(t.shape.slice(dim + 1)) * elem;
    const rowBytes = t.shape[dim]! * innerBytes;
    const chunkBytes = length * innerBytes;
    const bytes = new Uint8Array(outer * chunkBytes);
    readStrided(this.openFd(), this.path, bytes, {
      base: this.header.dataStart + t.begin + start * innerBytes,
      rows: outer,
      rowBytes,
      chunkBytes,
    });
    const shape = [...t.shape];
    shape[dim] = length;
    return decodeTensor(bytes, t.dtype, shape, this.label(name));
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private entry(name: string): TensorEntry {
    const t = this.header.tensors.get(name);
    if (t === undefined) throw new CheckpointError(`${this.path}: no tensor named '${name}' (the file has ${this.header.tensors.size})`);
    return t;
  }

  private openFd(): number {
    if (this.fd === undefined) throw new CheckpointError(`${this.path}: read after close()`);
    return this.fd;
  }

  private label(name: string): string {
    return `${this.path}: tensor '${name}'`;
  }
}

/** Validate a narrow request against a tensor's shape, naming both in errors. */
export function checkNarrow(shape: number[], dim: number, start: number, length: number, what: string): void {
  const shown = `[${shape.join(', ')}]`;
  if (!Number.isInteger(dim) || dim < 0 || dim >= shape.length) {
    throw new CheckpointError(`${what}: cannot narrow dim ${dim} of shape ${shown} (rank ${shape.length})`);
  }
  const size = shape[dim]!;
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > size) {
    throw new CheckpointError(
      `${what}: narrow(dim ${dim}, start ${start}, length ${length}) is outside [0, ${size}) of shape ${shown}`,
    );
  }
}

function product(xs: number[]): number {
  let p = 1;
  for (const x of xs) p *= x;
  return p;
}
