/**
 * Point to point over one byte ring per ordered pair (single producer, single
 * consumer). A message is an 8-byte header (element type, byte length) and
 * its bytes. The sender streams into free space and returns once everything
 * is in the ring, so a send that fits never waits for the receiver; larger
 * ones proceed as the receiver drains. Each side keeps its own position; the
 * shared word is the number of bytes in flight.
 *
 * Like a blocking NCCL send, a send larger than the ring (scratchBytes) to a
 * rank that is itself stuck sending back deadlocks until the timeout: chains
 * (pipeline stages) are fine, rings of large messages should alternate
 * (even ranks send first) or use allToAll.
 */
import { CollectiveTimeoutError, WeftError } from '@weft/core';
import { allocWire, bytesOf, wireTypeName, type WireArray } from './communicator.js';
import { ABORT, type ShmGroup } from './shm-group.js';
import { bump, deadlineAfter, waitSync } from './wait.js';

const HEADER_BYTES = 8;
const ELEM_BYTES = [4, 4, 1];

export class P2PRings {
  private readonly cap: number;
  private readonly rings: Uint8Array[] = [];
  /** Local positions: where I write next in ring me→peer, where I read next in ring peer→me. */
  private readonly writePos: number[];
  private readonly readPos: number[];
  private readonly header = new Int32Array(2);

  constructor(private readonly g: ShmGroup) {
    this.cap = g.handle.ringBytes;
    const pairs = g.ws * (g.ws - 1);
    for (let p = 0; p < pairs; p++) this.rings.push(new Uint8Array(g.handle.p2p, p * this.cap, this.cap));
    this.writePos = new Array<number>(g.ws).fill(0);
    this.readPos = new Array<number>(g.ws).fill(0);
  }

  private pair(src: number, dst: number): number {
    return src * (this.g.ws - 1) + (dst < src ? dst : dst - 1);
  }

  send(data: WireArray, type: number, dst: number): void {
    const pair = this.pair(this.g.me, dst);
    this.header[0] = type;
    this.header[1] = data.byteLength;
    const deadline = deadlineAfter(this.g.tuning.timeoutMs);
    this.write(pair, dst, bytesOf(this.header), deadline);
    this.write(pair, dst, bytesOf(data), deadline);
  }

  recv(src: number): WireArray {
    const pair = this.pair(src, this.g.me);
    const deadline = deadlineAfter(this.g.tuning.timeoutMs);
    this.read(pair, src, bytesOf(this.header), deadline);
    const type = this.header[0]!;
    const byteLength = this.header[1]!;
    const size = ELEM_BYTES[type];
    if (size === undefined || byteLength < 0 || byteLength % size !== 0) {
      throw new WeftError(`[${this.g.name}] corrupt message from rank ${this.g.ranks[src]}: type ${wireTypeName(type)}, ${byteLength} bytes`);
    }
    const out = allocWire(type, byteLength / size);
    this.read(pair, src, bytesOf(out), deadline);
    return out;
  }

  private write(pair: number, dst: number, bytes: Uint8Array, deadline: number): void {
    const { ctrl, lay } = this.g;
    const word = lay.ring + pair;
    const ring = this.rings[pair]!;
    let done = 0;
    while (done < bytes.length) {
      const free = this.cap - Atomics.load(ctrl, word);
      if (free === 0) {
        const ok = waitSync(ctrl, lay.doorbell + this.g.me, () => Atomics.load(ctrl, word) < this.cap || Atomics.load(ctrl, ABORT) !== 0, deadline, this.g.tuning.spinUs);
        this.checkAbort('send');
        if (!ok) {
          throw new CollectiveTimeoutError(
            `[${this.g.name}] send timed out after ${this.g.tuning.timeoutMs} ms on ${this.g.describe()}: ` +
              `rank ${this.g.ranks[dst]} (global) never received (${this.cap} bytes waiting in its ring)`,
          );
        }
        continue;
      }
      const n = Math.min(free, bytes.length - done);
      const pos = this.writePos[dst]!;
      const first = Math.min(n, this.cap - pos);
      ring.set(bytes.subarray(done, done + first), pos);
      if (first < n) ring.set(bytes.subarray(done + first, done + n), 0);
      this.writePos[dst] = (pos + n) % this.cap;
      done += n;
      Atomics.add(ctrl, word, n);
      bump(ctrl, lay.doorbell + dst);
    }
  }

  private read(pair: number, src: number, out: Uint8Array, deadline: number): void {
    const { ctrl, lay } = this.g;
    const word = lay.ring + pair;
    const ring = this.rings[pair]!;
    let done = 0;
    while (done < out.length) {
      const avail = Atomics.load(ctrl, word);
      if (avail === 0) {
        const ok = waitSync(ctrl, lay.doorbell + this.g.me, () => Atomics.load(ctrl, word) > 0 || Atomics.load(ctrl, ABORT) !== 0, deadline, this.g.tuning.spinUs);
        this.checkAbort('recv');
        if (!ok) {
          throw new CollectiveTimeoutError(
            `[${this.g.name}] recv timed out after ${this.g.tuning.timeoutMs} ms on ${this.g.describe()}: ` +
              `waiting for rank(s) ${this.g.ranks[src]} (global) that never sent`,
          );
        }
        continue;
      }
      const n = Math.min(avail, out.length - done);
      const pos = this.readPos[src]!;
      const first = Math.min(n, this.cap - pos);
      out.set(ring.subarray(pos, pos + first), done);
      if (first < n) out.set(ring.subarray(0, n - first), done + first);
      this.readPos[src] = (pos + n) % this.cap;
      done += n;
      Atomics.sub(ctrl, word, n);
      bump(ctrl, lay.doorbell + src);
    }
  }

  private checkAbort(op: string): void {
    if (Atomics.load(this.g.ctrl, ABORT) !== 0) throw new WeftError(`[${this.g.name}] ${op} aborted on ${this.g.describe()}: another rank failed`);
  }
}
