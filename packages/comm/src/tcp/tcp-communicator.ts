/**
 * Collectives of one group over the TCP transport (every pair of ranks has a
 * connection). Sends never block (the kernel and Node buffer them) and
 * receives are matched per (peer, channel) in order, so "send to all, then
 * receive from all" cannot deadlock.
 *
 * Algorithms, chosen for bytes on each rank's link, not message count:
 * - allReduce, large: reduce-scatter then all-gather of 1/ws slices (each
 *   rank sends and receives 2(ws−1)/ws of the array, as a ring does, in two
 *   steps instead of 2(ws−1)); small: one-shot, every rank reduces all.
 * - allGather / reduceScatter / allToAll / gather: direct exchange (optimal
 *   volume already: each rank sends its own data once per receiver).
 * - broadcast, large: scatter from the source then all-gather (the source
 *   sends ~2× the array instead of (ws−1)×).
 * Every reduction adds contributions in rank order 0, 1, … so all ranks get
 * the same bits, whatever the algorithm.
 */
import { WeftError } from '@weft/core';
import { allocWire, checkRank, wireTypeOf, type CommArray, type Communicator, type ReduceOp, type WireArray } from '../communicator.js';
import { decodeJson, encodeJson } from '../codec.js';
import { reduceInto } from '../reduce.js';
import type { TcpTransport } from './transport.js';

/** Below this many bytes allReduce and broadcast go in one step. */
const ONE_SHOT_BYTES = 64 * 1024;

type Num = Float32Array | Int32Array;

export class TcpCommunicator implements Communicator {
  readonly rankInGroup: number;
  readonly worldSize: number;

  /** `ranks`: the group's global ranks; `channel`: unique to this group on every connection. */
  constructor(
    private readonly t: TcpTransport,
    readonly groupName: string,
    private readonly ranks: number[],
    private readonly channel: number,
  ) {
    this.rankInGroup = ranks.indexOf(t.rank);
    this.worldSize = ranks.length;
    if (this.rankInGroup < 0) throw new WeftError(`rank ${t.rank} is not in group ${groupName} [${ranks.join(', ')}]`);
  }

  private post(j: number, data: WireArray): Promise<void> {
    return this.t.send(this.ranks[j]!, this.channel, data);
  }

  private take(j: number, op: string): Promise<WireArray> {
    return this.t.recv(this.ranks[j]!, this.channel, `[${this.groupName}] ${op}`);
  }

  private others(): number[] {
    return Array.from({ length: this.worldSize }, (_, j) => j).filter((j) => j !== this.rankInGroup);
  }

  /** Send parts[j] to each j ≠ me and return what each j sent (own slot: mine[me]). */
  private async exchange(parts: (j: number) => WireArray, op: string): Promise<WireArray[]> {
    const me = this.rankInGroup;
    const sent = Promise.all(this.others().map((j) => this.post(j, parts(j))));
    sent.catch(() => {}); // a failed receive may leave it unawaited
    const got = await Promise.all(this.others().map((j) => this.take(j, op)));
    await sent;
    const out: WireArray[] = [];
    let k = 0;
    for (let j = 0; j < this.worldSize; j++) out.push(j === me ? parts(me) : got[k++]!);
    return out;
  }

  private expectType(a: WireArray, type: number, n: number | null, op: string, j: number): void {
    if (wireTypeOf(a) !== type || (n !== null && a.length !== n)) {
      throw new WeftError(
        `[${this.groupName}] ${op}: rank ${this.ranks[j]} sent ${a.length} ${a.constructor.name} elements, expected ${n ?? 'some'} of the same type as this rank's: do the ranks call the same collectives in the same order?`,
      );
    }
  }

  async allReduce(data: CommArray, op: ReduceOp = 'sum'): Promise<CommArray> {
    if (this.worldSize === 1) return data;
    if (op !== 'sum' && op !== 'max') throw new WeftError(`[${this.groupName}] allReduce op must be 'sum' or 'max', got '${String(op)}'`);
    const type = wireTypeOf(data);
    if (data.byteLength <= ONE_SHOT_BYTES) {
      const all = await this.exchange(() => data, 'allReduce');
      all.forEach((a, j) => this.expectType(a, type, data.length, 'allReduce', j));
      const out = allocWire(type, data.length) as Num;
      reduceInto(out, all as Num[], op);
      return out;
    }
    const ws = this.worldSize;
    const me = this.rankInGroup;
    const bounds = (j: number) => [Math.floor((j * data.length) / ws), Math.floor(((j + 1) * data.length) / ws)] as const;
    const slice = (a: Num, j: number) => a.subarray(...bounds(j));
    const mine = await this.exchange((j) => slice(data, j), 'allReduce (reduce-scatter)');
    const [lo, hi] = bounds(me);
    mine.forEach((a, j) => this.expectType(a, type, hi - lo, 'allReduce', j));
    const reduced = allocWire(type, hi - lo) as Num;
    reduceInto(reduced, mine as Num[], op);
    const pieces = await this.exchange(() => reduced, 'allReduce (all-gather)');
    const out = allocWire(type, data.length) as Num;
    pieces.forEach((p, j) => {
      const [a, b] = bounds(j);
      this.expectType(p, type, b - a, 'allReduce', j);
      out.set(p as Num, a);
    });
    return out;
  }

  async allGather(data: CommArray): Promise<CommArray> {
    if (this.worldSize === 1) return data;
    const type = wireTypeOf(data);
    const all = await this.exchange(() => data, 'allGather');
    const out = allocWire(type, data.length * this.worldSize) as Num;
    all.forEach((a, j) => {
      this.expectType(a, type, data.length, 'allGather', j);
      out.set(a as Num, j * data.length);
    });
    return out;
  }

  async reduceScatter(data: CommArray): Promise<CommArray> {
    if (this.worldSize === 1) return data;
    const ws = this.worldSize;
    if (data.length % ws !== 0) throw new WeftError(`[${this.groupName}] reduceScatter: length ${data.length} is not divisible by the world size ${ws}`);
    const type = wireTypeOf(data);
    const n = data.length / ws;
    const mine = await this.exchange((j) => data.subarray(j * n, (j + 1) * n), 'reduceScatter');
    mine.forEach((a, j) => this.expectType(a, type, n, 'reduceScatter', j));
    const out = allocWire(type, n) as Num;
    reduceInto(out, mine as Num[], 'sum');
    return out;
  }

  async gather(data: CommArray, dst: number): Promise<CommArray | null> {
    checkRank(dst, this.worldSize, 'gather dst', this.groupName);
    if (this.worldSize === 1) return data;
    if (this.rankInGroup !== dst) {
      await this.post(dst, data.slice());
      return null;
    }
    const type = wireTypeOf(data);
    const out = allocWire(type, data.length * this.worldSize) as Num;
    out.set(data, dst * data.length);
    await Promise.all(
      this.others().map(async (j) => {
        const a = await this.take(j, 'gather');
        this.expectType(a, type, data.length, 'gather', j);
        out.set(a as Num, j * data.length);
      }),
    );
    return out;
  }

  async broadcast(data: CommArray | null, src: number): Promise<CommArray> {
    checkRank(src, this.worldSize, 'broadcast src', this.groupName);
    const isSrc = this.rankInGroup === src;
    if (isSrc && data === null) throw new WeftError(`[${this.groupName}] broadcast: the source rank passed null`);
    if (this.worldSize === 1) return data!;
    const ws = this.worldSize;
    const me = this.rankInGroup;
    // Receivers pass null: the source says type and length first.
    if (isSrc) await Promise.all(this.others().map((j) => this.post(j, Int32Array.of(wireTypeOf(data!), data!.length))));
    const head = isSrc ? Int32Array.of(wireTypeOf(data!), data!.length) : await this.take(src, 'broadcast');
    const type = head[0]!;
    const n = head[1]!;
    if (n * 4 <= ONE_SHOT_BYTES || ws === 2) {
      if (isSrc) {
        await Promise.all(this.others().map((j) => this.post(j, data!)));
        return data!;
      }
      const got = await this.take(src, 'broadcast');
      this.expectType(got, type, n, 'broadcast', src);
      return got as CommArray;
    }
    // Large: scatter slices from the source, then everyone all-gathers them.
    const bounds = (j: number) => [Math.floor((j * n) / ws), Math.floor(((j + 1) * n) / ws)] as const;
    let piece: WireArray;
    if (isSrc) {
      await Promise.all(this.others().map((j) => this.post(j, data!.subarray(...bounds(j)))));
      piece = data!.subarray(...bounds(me));
    } else piece = await this.take(src, 'broadcast (scatter)');
    const pieces = await this.exchange(() => piece, 'broadcast (all-gather)');
    if (isSrc) return data!;
    const out = allocWire(type, n) as Num;
    pieces.forEach((p, j) => {
      const [a, b] = bounds(j);
      this.expectType(p, type, b - a, 'broadcast', j);
      out.set(p as Num, a);
    });
    return out;
  }

  async send(data: CommArray, dst: number): Promise<void> {
    checkRank(dst, this.worldSize, 'send dst', this.groupName);
    if (dst === this.rankInGroup) throw new WeftError(`[${this.groupName}] send to oneself (rank ${dst}) is not supported over TCP`);
    // A copy: the caller may reuse its array at once while the socket still holds it.
    await this.post(dst, data.slice());
  }

  async recv(src: number): Promise<CommArray> {
    checkRank(src, this.worldSize, 'recv src', this.groupName);
    const a = await this.take(src, 'recv');
    if (a instanceof Uint8Array) throw new WeftError(`[${this.groupName}] recv: rank ${this.ranks[src]} sent an object where a tensor was expected`);
    return a;
  }

  async allToAll(chunks: CommArray[]): Promise<CommArray[]> {
    if (chunks.length !== this.worldSize) throw new WeftError(`[${this.groupName}] allToAll needs ${this.worldSize} chunks (one per rank), got ${chunks.length}`);
    if (this.worldSize === 1) return chunks;
    const type = wireTypeOf(chunks[0]!);
    const got = await this.exchange((j) => chunks[j]!, 'allToAll');
    got.forEach((a, j) => this.expectType(a, type, null, 'allToAll', j));
    return got as CommArray[];
  }

  async barrier(): Promise<void> {
    if (this.worldSize === 1) return;
    await this.exchange(() => new Uint8Array(0), 'barrier');
  }

  /** JSON only, never anything that could run code. */
  async broadcastObject<T>(obj: T | undefined, src: number): Promise<T> {
    checkRank(src, this.worldSize, 'broadcastObject src', this.groupName);
    if (this.worldSize === 1) return obj as T;
    if (this.rankInGroup === src) {
      const bytes = encodeJson(obj);
      await Promise.all(this.others().map((j) => this.post(j, bytes)));
      return obj as T;
    }
    const got = await this.take(src, 'broadcastObject');
    if (!(got instanceof Uint8Array)) throw new WeftError(`[${this.groupName}] broadcastObject: rank ${this.ranks[src]} sent tensor data, expected an object`);
    return decodeJson(got) as T;
  }
}
