/**
 * Collectives over a group's shared memory (see shm-group.ts). Large arrays go
 * in rounds of at most half a slot per rank, so memory stays bounded whatever
 * the tensor size. Each round is: write into my slot → barrier → read.
 * allReduce of large arrays is reduce-scatter then all-gather (each rank
 * reduces 1/ws of every round: O(n) work per rank); small ones are one-shot
 * (one barrier, every rank reduces everything in the same order).
 *
 * Everything here is synchronous inside the async methods: Atomics.wait in a
 * worker is the fastest wake-up there is.
 */
import { WeftError } from '@weft/core';
import {
  allocWire,
  checkRank,
  wireTypeOf,
  type CommArray,
  type Communicator,
  type ReduceOp,
  type WireArray,
} from './communicator.js';
import { decodeJson, encodeJson } from './codec.js';
import { P2PRings } from './p2p-ring.js';
import { Op, ShmGroup, type ShmGroupHandle, type ShmTuning } from './shm-group.js';

const ELEM_BYTES = [4, 4, 1];
/** Below this many bytes allReduce is one-shot: one barrier instead of two. */
const ONE_SHOT_BYTES = 32 * 1024;

type Num = Float32Array | Int32Array;

export class ShmCommunicator implements Communicator {
  readonly groupName: string;
  readonly rankInGroup: number;
  readonly worldSize: number;
  private readonly g: ShmGroup;
  private readonly p2p: P2PRings;

  constructor(handle: ShmGroupHandle, globalRank: number, tuning: ShmTuning) {
    this.g = new ShmGroup(handle, globalRank, tuning);
    this.p2p = new P2PRings(this.g);
    this.groupName = handle.name;
    this.rankInGroup = this.g.me;
    this.worldSize = this.g.ws;
  }

  async allReduce(data: CommArray, op: ReduceOp = 'sum'): Promise<CommArray> {
    if (this.worldSize === 1) return data;
    const type = wireTypeOf(data);
    if (type === 2) throw new WeftError(`[${this.groupName}] allReduce needs Float32Array or Int32Array`);
    if (op !== 'sum' && op !== 'max') throw new WeftError(`[${this.groupName}] allReduce op must be 'sum' or 'max', got '${String(op)}'`);
    const opCode = op === 'sum' ? Op.allReduceSum : Op.allReduceMax;
    return data.byteLength <= Math.min(ONE_SHOT_BYTES, this.g.halfBytes)
      ? this.allReduceOneShot(data, type, op, opCode)
      : this.allReduceTwoShot(data, type, op, opCode);
  }

  private allReduceOneShot(data: Num, type: 0 | 1, op: ReduceOp, opCode: number): Num {
    const g = this.g;
    const n = data.length;
    (g.slot(g.me, g.writeParity, type) as Num).set(data);
    g.publishMeta(opCode, type, n, 0);
    g.barrier('allReduce');
    g.checkMeta(true, true, false);
    // every rank reduces everything, in rank order, into the half of its slot nobody reads this phase
    const rp = g.readParity;
    const tmp = g.writeParity;
    const srcs: number[] = [];
    for (let r = 0; r < g.ws; r++) srcs.push(g.slotOffset(r, rp));
    g.reducer.reduce(g.slotOffset(g.me, tmp), srcs, n, type, op);
    return (g.slot(g.me, tmp, type) as Num).slice(0, n);
  }

  private allReduceTwoShot(data: Num, type: 0 | 1, op: ReduceOp, opCode: number): Num {
    const g = this.g;
    const ws = g.ws;
    const n = data.length;
    const out = allocWire(type, n) as Num;
    const cap = g.halfBytes / 4;
    const rounds = Math.max(1, Math.ceil(n / cap));
    const srcs: number[] = new Array<number>(ws);
    for (let k = 0; k < rounds; k++) {
      const off = k * cap;
      const c = Math.min(cap, n - off);
      (g.slot(g.me, g.writeParity, type) as Num).set(data.subarray(off, off + c));
      if (k === 0) g.publishMeta(opCode, type, n, 0);
      g.barrier('allReduce');
      if (k === 0) g.checkMeta(true, true, false);
      // reduce my share of the round into the other half of my own slot
      const rp = g.readParity;
      const wp = g.writeParity;
      const s0 = shareStart(g.me, c, ws);
      const s1 = shareStart(g.me + 1, c, ws);
      for (let r = 0; r < ws; r++) srcs[r] = g.slotOffset(r, rp) + s0 * 4;
      g.reducer.reduce(g.slotOffset(g.me, wp) + s0 * 4, srcs, s1 - s0, type, op);
      g.barrier('allReduce');
      for (let r = 0; r < ws; r++) {
        const a = shareStart(r, c, ws);
        const b = shareStart(r + 1, c, ws);
        out.set((g.slot(r, wp, type) as Num).subarray(a, b), off + a);
      }
    }
    return out;
  }

  async allGather(data: CommArray): Promise<CommArray> {
    if (this.worldSize === 1) return data;
    return this.gatherImpl(data, -1, 'allGather') as CommArray;
  }

  async gather(data: CommArray, dst: number): Promise<CommArray | null> {
    checkRank(dst, this.worldSize, 'gather dst', this.groupName);
    if (this.worldSize === 1) return data;
    return this.gatherImpl(data, dst, 'gather') as CommArray | null;
  }

  /** allGather (dst −1) or gather to dst: equal lengths, concatenated in rank order. */
  private gatherImpl(data: WireArray, dst: number, name: string): WireArray | null {
    const g = this.g;
    const type = wireTypeOf(data);
    const n = data.length;
    const cap = g.halfBytes / ELEM_BYTES[type]!;
    const rounds = Math.max(1, Math.ceil(n / cap));
    const reads = dst < 0 || dst === g.me;
    const out = reads ? allocWire(type, g.ws * n) : null;
    for (let k = 0; k < rounds; k++) {
      const off = k * cap;
      const c = Math.min(cap, n - off);
      g.slot(g.me, g.writeParity, type).set(data.subarray(off, off + c));
      if (k === 0) g.publishMeta(dst < 0 ? Op.allGather : Op.gather, type, n, dst);
      g.barrier(name);
      if (k === 0) g.checkMeta(true, true, true);
      if (out) {
        const rp = g.readParity;
        for (let r = 0; r < g.ws; r++) out.set(g.slot(r, rp, type).subarray(0, c), r * n + off);
      }
    }
    return out;
  }

  async reduceScatter(data: CommArray): Promise<CommArray> {
    if (this.worldSize === 1) return data;
    const g = this.g;
    const ws = g.ws;
    const type = wireTypeOf(data);
    if (type === 2) throw new WeftError(`[${this.groupName}] reduceScatter needs Float32Array or Int32Array`);
    const n = data.length;
    if (n % ws !== 0) {
      throw new WeftError(`[${this.groupName}] reduceScatter: length ${n} is not divisible by the group's world size ${ws}`);
    }
    const m = n / ws;
    const out = allocWire(type, m) as Num;
    const piece = Math.floor(g.halfBytes / 4 / ws);
    const rounds = Math.max(1, Math.ceil(m / piece));
    const srcs: number[] = new Array<number>(ws);
    for (let k = 0; k < rounds; k++) {
      const off = k * piece;
      const c = Math.min(piece, m - off);
      const mine = g.slot(g.me, g.writeParity, type) as Num;
      for (let r = 0; r < ws; r++) mine.set(data.subarray(r * m + off, r * m + off + c), r * piece);
      if (k === 0) g.publishMeta(Op.reduceScatter, type, n, 0);
      g.barrier('reduceScatter');
      if (k === 0) g.checkMeta(true, true, false);
      // my piece of every slot, reduced into the half of my slot nobody reads this phase
      const rp = g.readParity;
      const tmp = g.writeParity;
      for (let r = 0; r < ws; r++) srcs[r] = g.slotOffset(r, rp) + g.me * piece * 4;
      g.reducer.reduce(g.slotOffset(g.me, tmp), srcs, c, type, 'sum');
      out.set((g.slot(g.me, tmp, type) as Num).subarray(0, c), off);
    }
    return out;
  }

  async broadcast(data: CommArray | null, src: number): Promise<CommArray> {
    checkRank(src, this.worldSize, 'broadcast src', this.groupName);
    if (this.worldSize === 1) {
      if (data === null) throw new WeftError(`[${this.groupName}] broadcast: the source rank passed null`);
      return data;
    }
    return this.broadcastImpl(data, src, Op.broadcast) as CommArray;
  }

  private broadcastImpl(data: WireArray | null, src: number, opCode: number): WireArray {
    const g = this.g;
    const isSrc = g.me === src;
    if (isSrc && data === null) throw new WeftError(`[${this.groupName}] broadcast: the source rank ${g.describe()} passed null`);
    const myType = isSrc ? wireTypeOf(data!) : -1;
    g.publishMeta(opCode, myType, isSrc ? data!.length : -1, src);
    if (isSrc) g.slot(g.me, g.writeParity, myType).set(data!.subarray(0, Math.min(data!.length, g.halfBytes / ELEM_BYTES[myType]!)));
    g.barrier('broadcast');
    g.checkMeta(false, false, true);
    const [, type, n] = g.meta(src);
    const cap = g.halfBytes / ELEM_BYTES[type]!;
    const rounds = Math.max(1, Math.ceil(n / cap));
    const out = isSrc ? data! : allocWire(type, n);
    for (let k = 0; k < rounds; k++) {
      const off = k * cap;
      if (k > 0) {
        if (isSrc) g.slot(g.me, g.writeParity, type).set(data!.subarray(off, Math.min(n, off + cap)));
        g.barrier('broadcast');
      }
      if (!isSrc) out.set(g.slot(src, g.readParity, type).subarray(0, Math.min(cap, n - off)), off);
    }
    return out;
  }

  async allToAll(chunks: CommArray[]): Promise<CommArray[]> {
    const ws = this.worldSize;
    if (chunks.length !== ws) throw new WeftError(`[${this.groupName}] allToAll needs one chunk per rank (${ws}), got ${chunks.length}`);
    if (ws === 1) return chunks;
    const g = this.g;
    const type = wireTypeOf(chunks[0]!);
    for (const c of chunks) {
      if (wireTypeOf(c) !== type) throw new WeftError(`[${this.groupName}] allToAll chunks must all have the same element type`);
    }
    // Every source gets a piece of every slot: bytes per (source, destination) per round.
    const pieceBytes = Math.floor(g.halfBytes / ws / 4) * 4;
    const writePieces = (k: number) => {
      const mine = g.slot(g.me, g.writeParity, 2) as Uint8Array;
      const per = pieceBytes / ELEM_BYTES[type]!;
      for (let j = 0; j < ws; j++) {
        if (j === g.me) continue;
        const c = chunks[j]!;
        const a = k * per;
        if (a >= c.length) continue;
        mine.set(new Uint8Array(c.buffer, c.byteOffset + a * c.BYTES_PER_ELEMENT, Math.min(per, c.length - a) * c.BYTES_PER_ELEMENT), j * pieceBytes);
      }
    };
    writePieces(0);
    g.publishLens(chunks.map((c) => c.length));
    g.publishMeta(Op.allToAll, type, -1, 0);
    g.barrier('allToAll');
    g.checkMeta(false, false, false);
    const result: WireArray[] = [];
    let rounds = 1;
    for (let i = 0; i < ws; i++) {
      const t = g.meta(i)[1];
      const per = pieceBytes / ELEM_BYTES[t]!;
      for (let j = 0; j < ws; j++) if (i !== j) rounds = Math.max(rounds, Math.ceil(g.lensFrom(i, j) / per));
      result.push(i === g.me ? chunks[i]!.slice() : allocWire(t, g.lensFrom(i, g.me)));
    }
    for (let k = 0; k < rounds; k++) {
      if (k > 0) {
        writePieces(k);
        g.barrier('allToAll');
      }
      const rp = g.readParity;
      for (let i = 0; i < ws; i++) {
        if (i === g.me) continue;
        const out = result[i]!;
        const size = out.BYTES_PER_ELEMENT;
        const per = pieceBytes / size;
        const a = k * per;
        if (a >= out.length) continue;
        const nbytes = Math.min(per, out.length - a) * size;
        const slot = g.slot(i, rp, 2) as Uint8Array;
        new Uint8Array(out.buffer, out.byteOffset + a * size, nbytes).set(slot.subarray(g.me * pieceBytes, g.me * pieceBytes + nbytes));
      }
    }
    return result as CommArray[];
  }

  async barrier(): Promise<void> {
    if (this.worldSize === 1) return;
    this.g.publishMeta(Op.barrier, 0, 0, 0);
    this.g.barrier('barrier');
    this.g.checkMeta(false, false, false);
  }

  async send(data: CommArray, dst: number): Promise<void> {
    checkRank(dst, this.worldSize, 'send dst', this.groupName);
    if (dst === this.rankInGroup) throw new WeftError(`[${this.groupName}] send to oneself (rank ${dst} in group)`);
    this.p2p.send(data, wireTypeOf(data), dst);
  }

  async recv(src: number): Promise<CommArray> {
    checkRank(src, this.worldSize, 'recv src', this.groupName);
    if (src === this.rankInGroup) throw new WeftError(`[${this.groupName}] recv from oneself (rank ${src} in group)`);
    const a = this.p2p.recv(src);
    if (a instanceof Uint8Array) throw new WeftError(`[${this.groupName}] recv got a byte message from rank ${this.g.ranks[src]}; expected Float32Array or Int32Array`);
    return a;
  }

  async broadcastObject<T>(obj: T | undefined, src: number): Promise<T> {
    checkRank(src, this.worldSize, 'broadcastObject src', this.groupName);
    if (this.worldSize === 1) return obj as T;
    const bytes = this.rankInGroup === src ? encodeJson(obj) : null;
    const got = this.broadcastImpl(bytes, src, Op.broadcastObject) as Uint8Array;
    return (this.rankInGroup === src ? obj : decodeJson(got)) as T;
  }
}

/** Start of rank r's share of a c-element round (shares differ by at most one element). */
function shareStart(r: number, c: number, ws: number): number {
  return Math.floor((r * c) / ws);
}
