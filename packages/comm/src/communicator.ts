/**
 * The transport seen by GroupCoordinator: collectives over raw typed arrays,
 * one instance per group per rank. Shared memory between worker threads is
 * one implementation (shm-communicator.ts); a socket one can sit beside it.
 */
import { WeftError } from '@weft/core';

export type CommArray = Float32Array | Int32Array;
export type ReduceOp = 'sum' | 'max';

export interface Communicator {
  /** e.g. 'tp:0' (kind:index). */
  readonly groupName: string;
  readonly rankInGroup: number;
  readonly worldSize: number;
  /** A new array of the same type (the input itself at world size 1). */
  allReduce(data: CommArray, op?: ReduceOp): Promise<CommArray>;
  /** Equal sizes on every rank, concatenated in rank order. */
  allGather(data: CommArray): Promise<CommArray>;
  /** Length divisible by worldSize; rank i gets the sum of slice i. */
  reduceScatter(data: CommArray): Promise<CommArray>;
  /** The concatenation in rank order on `dst`, null elsewhere. */
  gather(data: CommArray, dst: number): Promise<CommArray | null>;
  /** Ranks other than `src` pass null and learn type and length. */
  broadcast(data: CommArray | null, src: number): Promise<CommArray>;
  send(data: CommArray, dst: number): Promise<void>;
  recv(src: number): Promise<CommArray>;
  /** chunks[j] goes to rank j (uneven, possibly empty); result[i] came from rank i. */
  allToAll(chunks: CommArray[]): Promise<CommArray[]>;
  barrier(): Promise<void>;
  /** JSON-serialisable values only. */
  broadcastObject<T>(obj: T | undefined, src: number): Promise<T>;
}

/** Element types the shared-memory transport moves; uint8 carries encoded objects. */
export type WireArray = Float32Array | Int32Array | Uint8Array;
export const WireType = { Float32: 0, Int32: 1, Uint8: 2 } as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

export function wireTypeOf(a: WireArray): WireType {
  if (a instanceof Float32Array) return WireType.Float32;
  if (a instanceof Int32Array) return WireType.Int32;
  if (a instanceof Uint8Array) return WireType.Uint8;
  throw new WeftError(`unsupported array type ${(a as object).constructor.name}; use Float32Array or Int32Array`);
}

/**
 * A new array for results, every element of which the caller overwrites.
 * Large ones skip calloc's zeroing and, below glibc's mmap threshold, reuse
 * already-mapped heap pages: 3–4× faster than `new Float32Array(n)` at 16 MiB,
 * where the page faults of fresh zeroed memory dominate a collective.
 */
export function allocWire(type: number, length: number): WireArray {
  const bytes = length * (type === WireType.Uint8 ? 1 : 4);
  const buffer = bytes >= 4096 ? Buffer.allocUnsafeSlow(bytes).buffer : new ArrayBuffer(bytes);
  switch (type) {
    case WireType.Float32:
      return new Float32Array(buffer, 0, length);
    case WireType.Int32:
      return new Int32Array(buffer, 0, length);
    case WireType.Uint8:
      return new Uint8Array(buffer, 0, length);
    default:
      throw new WeftError(`corrupt wire type code ${String(type)}`);
  }
}

export function wireTypeName(type: number): string {
  return ['float32', 'int32', 'uint8'][type] ?? `type#${type}`;
}

/** Byte view of any typed array, no copy. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function checkRank(r: number, worldSize: number, what: string, groupName: string): void {
  if (!Number.isInteger(r) || r < 0 || r >= worldSize) {
    throw new WeftError(`[${groupName}] ${what} rank ${String(r)} is outside the group (world size ${worldSize})`);
  }
}

/**
 * A group of one: every collective returns its input. send/recv to oneself go
 * through a local queue so a ring of one still works.
 */
export class SoloCommunicator implements Communicator {
  readonly rankInGroup = 0;
  readonly worldSize = 1;
  private readonly selfQueue: CommArray[] = [];
  constructor(readonly groupName: string) {}
  async allReduce(data: CommArray): Promise<CommArray> {
    return data;
  }
  async allGather(data: CommArray): Promise<CommArray> {
    return data;
  }
  async reduceScatter(data: CommArray): Promise<CommArray> {
    return data;
  }
  async gather(data: CommArray, dst: number): Promise<CommArray | null> {
    checkRank(dst, 1, 'gather dst', this.groupName);
    return data;
  }
  async broadcast(data: CommArray | null, src: number): Promise<CommArray> {
    checkRank(src, 1, 'broadcast src', this.groupName);
    if (data === null) throw new WeftError(`[${this.groupName}] broadcast: the source rank passed null`);
    return data;
  }
  async send(data: CommArray, dst: number): Promise<void> {
    checkRank(dst, 1, 'send dst', this.groupName);
    this.selfQueue.push(data);
  }
  async recv(src: number): Promise<CommArray> {
    checkRank(src, 1, 'recv src', this.groupName);
    const d = this.selfQueue.shift();
    if (d === undefined) throw new WeftError(`[${this.groupName}] recv in a group of one with nothing sent: it would wait forever`);
    return d;
  }
  async allToAll(chunks: CommArray[]): Promise<CommArray[]> {
    if (chunks.length !== 1) throw new WeftError(`[${this.groupName}] allToAll needs 1 chunk per rank, got ${chunks.length}`);
    return chunks;
  }
  async barrier(): Promise<void> {}
  async broadcastObject<T>(obj: T | undefined, src: number): Promise<T> {
    checkRank(src, 1, 'broadcastObject src', this.groupName);
    return obj as T;
  }
}
