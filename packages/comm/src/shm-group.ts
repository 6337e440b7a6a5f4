/**
 * The shared memory of one group and the barrier over it.
 *
 * ctrl (Int32 words): an epoch word that barrier waiters sleep on, an abort
 * flag, one generation number per rank, one doorbell per rank (point to point
 * waiters sleep on their own), op metadata and allToAll lengths (two copies,
 * by phase parity), and a byte count per ordered pair's ring.
 * data: one slot of `scratchBytes` per rank, split in two halves: what a rank
 * writes between barrier g-1 and g goes to half g&1, so a fast rank writing
 * the next phase never overwrites what a slow rank is still reading.
 * p2p: one byte ring per ordered pair (send/recv).
 */
import { CollectiveTimeoutError, WeftError } from '@weft/core';
import { bump, deadlineAfter, waitSync } from './wait.js';
import { wireTypeName } from './communicator.js';
import { Reducer, sharedMemory, type WasmMemory } from './kernels.js';

/** Structured-cloneable description of a group's shared memory; every member attaches to the same buffers. */
export interface ShmGroupHandle {
  /** 'tp:0' */
  name: string;
  /** Global ranks, in group order. */
  ranks: number[];
  scratchBytes: number;
  ringBytes: number;
  ctrl: SharedArrayBuffer;
  /** The slots: the buffer of `memory` when wasm is available (reductions run on it in place). */
  data: SharedArrayBuffer;
  memory: WasmMemory | null;
  p2p: SharedArrayBuffer;
}

export const EPOCH = 0;
export const ABORT = 1;
const GEN0 = 8;
const META_WORDS = 4;

/** Word offsets of each region for a group of `ws` ranks. */
export function ctrlLayout(ws: number) {
  const gen = GEN0;
  const doorbell = gen + ws;
  const meta = doorbell + ws; // [parity][rank][op, type, len, aux]
  const lens = meta + 2 * ws * META_WORDS; // [parity][src][dst]
  const ring = lens + 2 * ws * ws; // [pair] bytes in flight
  const words = ring + ws * Math.max(ws - 1, 0);
  return { gen, doorbell, meta, lens, ring, words };
}

/** Bytes of one half slot: a multiple of 4 so every element type lines up. */
export function halfSlotBytes(scratchBytes: number): number {
  return Math.floor(scratchBytes / 8) * 4;
}

export const MIN_SCRATCH_BYTES = 256;

export function createShmGroup(name: string, ranks: number[], scratchBytes: number, ringBytes = scratchBytes): ShmGroupHandle {
  const ws = ranks.length;
  if (!Number.isInteger(scratchBytes) || scratchBytes < MIN_SCRATCH_BYTES || halfSlotBytes(scratchBytes) < 4 * ws) {
    throw new WeftError(`[${name}] scratchBytes ${scratchBytes} is too small for ${ws} ranks (need at least ${Math.max(MIN_SCRATCH_BYTES, 8 * ws)})`);
  }
  if (!Number.isInteger(ringBytes) || ringBytes < 64) throw new WeftError(`[${name}] ring size ${ringBytes} bytes is too small (min 64)`);
  // Untouched pages of a SharedArrayBuffer are never committed, so a ring per
  // pair costs address space, not memory, until it is used.
  const { memory, buffer } = sharedMemory(ws * 2 * halfSlotBytes(scratchBytes));
  return {
    name,
    ranks: [...ranks],
    scratchBytes,
    ringBytes,
    ctrl: new SharedArrayBuffer(ctrlLayout(ws).words * 4),
    data: buffer,
    memory,
    p2p: new SharedArrayBuffer(ws * Math.max(ws - 1, 0) * ringBytes),
  };
}

/** Wake every rank of the group blocked on it, telling it to give up (the pool is failing). */
export function abortShmGroup(h: ShmGroupHandle): void {
  const ctrl = new Int32Array(h.ctrl);
  const lay = ctrlLayout(h.ranks.length);
  Atomics.store(ctrl, ABORT, 1);
  bump(ctrl, EPOCH);
  for (let r = 0; r < h.ranks.length; r++) bump(ctrl, lay.doorbell + r);
}

export const Op = {
  allReduceSum: 1,
  allReduceMax: 2,
  allGather: 3,
  reduceScatter: 4,
  gather: 5,
  broadcast: 6,
  allToAll: 7,
  barrier: 8,
  broadcastObject: 9,
} as const;
const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k]));

export interface ShmTuning {
  /** Every blocking wait; default 60 000 ms. */
  timeoutMs: number;
  /** Microseconds to spin before sleeping in the kernel; 0 when ranks outnumber cores. */
  spinUs: number;
}

/** One rank's view of a group's shared memory: barrier, op metadata, slot views. */
export class ShmGroup {
  readonly name: string;
  readonly ranks: number[];
  readonly ws: number;
  readonly me: number;
  readonly ctrl: Int32Array;
  readonly lay: ReturnType<typeof ctrlLayout>;
  readonly halfBytes: number;
  /** Generation of the last barrier this rank arrived at. */
  private gen = 0;
  private readonly u8: Uint8Array[] = [];
  private readonly i32: Int32Array[] = [];
  private readonly f32: Float32Array[] = [];
  readonly reducer: Reducer;

  constructor(
    readonly handle: ShmGroupHandle,
    readonly globalRank: number,
    readonly tuning: ShmTuning,
  ) {
    this.name = handle.name;
    this.ranks = handle.ranks;
    this.ws = handle.ranks.length;
    this.me = handle.ranks.indexOf(globalRank);
    if (this.me < 0) throw new WeftError(`rank ${globalRank} is not in group ${handle.name} [${handle.ranks.join(', ')}]`);
    this.ctrl = new Int32Array(handle.ctrl);
    this.lay = ctrlLayout(this.ws);
    this.halfBytes = halfSlotBytes(handle.scratchBytes);
    const data = handle.memory?.buffer ?? handle.data;
    this.reducer = new Reducer(handle.memory, data);
    for (let r = 0; r < this.ws; r++) {
      for (let p = 0; p < 2; p++) {
        const off = this.slotOffset(r, p);
        this.u8.push(new Uint8Array(data, off, this.halfBytes));
        this.i32.push(new Int32Array(data, off, this.halfBytes / 4));
        this.f32.push(new Float32Array(data, off, this.halfBytes / 4));
      }
    }
  }

  /** Parity of the phase now running: where this phase's writes go. */
  get writeParity(): number {
    return (this.gen + 1) & 1;
  }
  /** Parity of the phase that the last barrier closed: where to read what peers wrote before it. */
  get readParity(): number {
    return this.gen & 1;
  }

  /** Byte offset of a half slot in the data memory. */
  slotOffset(rank: number, parity: number): number {
    return (2 * rank + parity) * this.halfBytes;
  }

  /** Half slot of `rank` for `parity`, viewed as the element type `type` (0 f32, 1 i32, 2 u8). */
  slot(rank: number, parity: number, type: number): Float32Array | Int32Array | Uint8Array {
    const i = 2 * rank + parity;
    return (type === 0 ? this.f32[i] : type === 1 ? this.i32[i] : this.u8[i])!;
  }

  describe(): string {
    return `rank ${this.globalRank} (rank ${this.me} in group)`;
  }

  private checkAbort(op: string): void {
    if (Atomics.load(this.ctrl, ABORT) !== 0) throw new WeftError(`[${this.name}] ${op} aborted on ${this.describe()}: another rank failed`);
  }

  /** Arrive and wait for every rank. Throws CollectiveTimeoutError naming the ranks that never came. */
  barrier(op: string): void {
    const { ctrl } = this;
    const gen0 = this.lay.gen;
    const g = (this.gen = (this.gen + 1) | 0);
    Atomics.store(ctrl, gen0 + this.me, g);
    const arrived = () => {
      for (let r = 0; r < this.ws; r++) if (((Atomics.load(ctrl, gen0 + r) - g) | 0) < 0) return false;
      return true;
    };
    if (arrived()) {
      // The last to arrive (in seq-cst order) always sees everyone; it wakes the sleepers.
      bump(ctrl, EPOCH);
      return;
    }
    const deadline = deadlineAfter(this.tuning.timeoutMs);
    const ok = waitSync(ctrl, EPOCH, () => arrived() || Atomics.load(ctrl, ABORT) !== 0, deadline, this.tuning.spinUs);
    this.checkAbort(op);
    if (!ok) {
      const missing: number[] = [];
      for (let r = 0; r < this.ws; r++) if (((Atomics.load(ctrl, gen0 + r) - g) | 0) < 0) missing.push(this.ranks[r]!);
      throw new CollectiveTimeoutError(
        `[${this.name}] ${op} timed out after ${this.tuning.timeoutMs} ms on ${this.describe()}: ` +
          `waiting for rank(s) ${missing.join(', ')} (global) that never arrived`,
      );
    }
  }

  /** Publish what this rank is about to do; read by peers after the next barrier. */
  publishMeta(op: number, type: number, len: number, aux: number): void {
    const base = this.lay.meta + (this.writeParity * this.ws + this.me) * META_WORDS;
    this.ctrl[base] = op;
    this.ctrl[base + 1] = type;
    this.ctrl[base + 2] = len;
    this.ctrl[base + 3] = aux;
  }

  /** Metadata rank `r` published before the last barrier: [op, type, len, aux]. */
  meta(r: number): [number, number, number, number] {
    const base = this.lay.meta + (this.readParity * this.ws + r) * META_WORDS;
    const c = this.ctrl;
    return [c[base]!, c[base + 1]!, c[base + 2]!, c[base + 3]!];
  }

  /**
   * After the first barrier of an op: every rank must be in the same op with
   * compatible arguments, else every rank throws the same clear error instead
   * of exchanging garbage.
   */
  checkMeta(sameType: boolean, sameLen: boolean, sameAux: boolean): void {
    const mine = this.meta(this.me);
    for (let r = 0; r < this.ws; r++) {
      if (r === this.me) continue;
      const other = this.meta(r);
      const bad =
        other[0] !== mine[0] || (sameType && other[1] !== mine[1]) || (sameLen && other[2] !== mine[2]) || (sameAux && other[3] !== mine[3]);
      if (bad) {
        throw new WeftError(
          `[${this.name}] collective mismatch on ${this.describe()}: this rank called ${describeMeta(mine)} ` +
            `but rank ${this.ranks[r]} (global) called ${describeMeta(other)}`,
        );
      }
    }
  }

  /** allToAll lengths: write mine for this phase / read the matrix of the last one. */
  publishLens(lens: number[]): void {
    const base = this.lay.lens + (this.writeParity * this.ws + this.me) * this.ws;
    for (let j = 0; j < this.ws; j++) this.ctrl[base + j] = lens[j]!;
  }
  lensFrom(src: number, dst: number): number {
    return this.ctrl[this.lay.lens + (this.readParity * this.ws + src) * this.ws + dst]!;
  }
}

function describeMeta([op, type, len, aux]: [number, number, number, number]): string {
  const name = OP_NAMES[op] ?? `op#${op}`;
  if (op === Op.barrier) return 'barrier()';
  if (op === Op.allToAll) return `allToAll(${wireTypeName(type)})`;
  const arr = type < 0 ? 'null' : `${wireTypeName(type)}[${len}]`;
  if (op === Op.gather) return `gather(${arr}, dst ${aux})`;
  if (op === Op.broadcast) return `broadcast(${arr}, src ${aux})`;
  if (op === Op.broadcastObject) return `broadcastObject(src ${aux})`;
  if (op === Op.allReduceSum || op === Op.allReduceMax) return `allReduce(${arr}, ${op === Op.allReduceSum ? 'sum' : 'max'})`;
  return `${name}(${arr})`;
}
