/**
 * The TCP transport of one rank: an authenticated connection to every other
 * rank of the world, and per (peer, channel) FIFO queues of whole messages.
 * Every group's communicator uses its own channel; the driver uses two. Any
 * connection lost without an orderly BYE aborts the transport: every waiting
 * and later operation fails with an error naming the lost rank (a job with a
 * dead rank cannot be completed, so failing fast is the useful behaviour).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { CollectiveTimeoutError, WeftError } from '@weft/core';
import { allocWire, bytesOf, wireTypeName, wireTypeOf, type WireArray } from '../communicator.js';
import { acceptHandshake, type AuthedConn, type HandshakeOptions } from './connection.js';
import { DATA_HEADER, DATA_PART_BYTES, DEFAULT_MAX_FRAME, FrameType, dataHeader } from './frame.js';

/** This rank could not listen where asked (`code`: the system's, e.g. EADDRINUSE). */
export class ListenError extends WeftError {
  override name = 'ListenError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** A connection to a rank was lost without an orderly goodbye. */
export class PeerLostError extends WeftError {
  override name = 'PeerLostError';
  constructor(
    readonly peer: number,
    readonly detail: string,
  ) {
    super(`lost rank ${peer}: ${detail}`);
  }
}

export interface TransportOptions {
  rank: number;
  worldSize: number;
  /** The job's shared secret (HMAC key). */
  token: string;
  /** Default wait of recv; default 60 000 ms. */
  timeoutMs?: number;
  /** Largest frame accepted from an authenticated peer; default 64 MiB. */
  maxFrameBytes?: number;
  /** Where dropped connections and other events are reported; default stderr. */
  log?: (line: string) => void;
  /**
   * MAC every frame after the handshake (default true). Off only to measure what it costs (bench:comm):
   * without it, whoever can write into a connection can alter the job's tensors. Every rank must agree.
   */
  frameMac?: boolean;
}

type Waiter = { resolve: (a: WireArray) => void; reject: (e: Error) => void; timer: NodeJS.Timeout | null };

interface Channel {
  ready: WireArray[];
  waiters: Waiter[];
  parts: Buffer[];
  partType: number;
}

interface Peer {
  conn: AuthedConn;
  address: string;
  /** Said goodbye: its close is not a failure. */
  left: boolean;
}

const ELEM = [4, 4, 1];

export class TcpTransport {
  readonly rank: number;
  readonly worldSize: number;
  readonly token: string;
  readonly timeoutMs: number;
  readonly maxFrameBytes: number;
  readonly frameMac: boolean;
  readonly log: (line: string) => void;
  private readonly peers = new Map<number, Peer>();
  private readonly channels = new Map<number, Map<number, Channel>>();
  private server: Server | null = null;
  private failure: Error | null = null;
  private closing = false;
  private readonly abortListeners: ((e: Error) => void)[] = [];
  /** Decides on each authenticated inbound connection (rendezvous sets it): a reply and what to do with the connection, or a reason to refuse. */
  admit: (info: unknown) => { reply: unknown; accept: (conn: AuthedConn) => void } | string = () => 'this rank is not accepting connections now';

  constructor(opts: TransportOptions) {
    this.rank = opts.rank;
    this.worldSize = opts.worldSize;
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME;
    this.frameMac = opts.frameMac ?? true;
    this.log = opts.log ?? ((line) => process.stderr.write(`weft[rank ${opts.rank}] ${line}\n`));
  }

  /** Handshake settings of this rank's connections. */
  get handshakeOptions(): HandshakeOptions {
    return { token: this.token, timeoutMs: Math.min(this.timeoutMs, 10_000), maxFrame: this.maxFrameBytes + DATA_HEADER, frameMac: this.frameMac };
  }

  /** Listen on host:port (port 0: any). Returns the port bound. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = createServer({ noDelay: true }, (s) => this.onInbound(s));
      server.once('error', (e) => reject(new ListenError(`rank ${this.rank}: cannot listen on ${host}:${port}: ${e.message}`, (e as NodeJS.ErrnoException).code)));
      server.listen({ host, port, exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', (e) => this.log(`listener error: ${e.message}`));
        this.server = server;
        resolve((server.address() as { port: number }).port);
      });
    });
  }

  private onInbound(socket: Socket): void {
    socket.on('error', () => {});
    let accept: ((c: AuthedConn) => void) | null = null;
    acceptHandshake(socket, this.handshakeOptions, (info) => {
      if (this.failure || this.closing) return 'this rank is shutting down';
      const verdict = this.admit(info);
      if (typeof verdict === 'string') return verdict;
      accept = verdict.accept;
      return { reply: verdict.reply };
    }).then(
      ({ conn }) => {
        try {
          accept?.(conn);
        } catch (e) {
          this.log(`dropped a connection: ${(e as Error).message}`);
        }
      },
      (e: Error) => this.log(`dropped a connection: ${e.message}`),
    );
  }

  /** Register an authenticated connection to `peer`. */
  addPeer(peer: number, conn: AuthedConn): void {
    if (this.peers.has(peer)) {
      conn.destroy('duplicate connection');
      throw new WeftError(`rank ${this.rank}: a second connection claims to be rank ${peer}`);
    }
    const p: Peer = { conn, address: conn.remote, left: false };
    this.peers.set(peer, p);
    conn.attach({
      onFrame: (f) => this.onFrame(peer, p, f),
      onClose: (reason) => {
        if (p.left || this.closing) {
          this.failWaiters(peer, new WeftError(`rank ${peer} has shut down`));
          return;
        }
        this.abort(new PeerLostError(peer, `connection to ${p.address} dropped (${reason ?? 'closed'})`));
      },
    });
  }

  /** The port this rank listens on (null before listen()). */
  get listenPort(): number | null {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : null;
  }

  get connectedPeers(): number[] {
    return [...this.peers.keys()].sort((a, b) => a - b);
  }

  private channel(peer: number, ch: number): Channel {
    let m = this.channels.get(peer);
    if (!m) this.channels.set(peer, (m = new Map()));
    let c = m.get(ch);
    if (!c) m.set(ch, (c = { ready: [], waiters: [], parts: [], partType: -1 }));
    return c;
  }

  private onFrame(peer: number, p: Peer, f: Buffer): void {
    const type = f[0];
    if (type === FrameType.bye) {
      p.left = true;
      return;
    }
    if (type === FrameType.abort) {
      // A peer lost a rank before we did: blame that rank, not the messenger.
      let lost = peer;
      let detail = 'aborted';
      try {
        const m = JSON.parse(f.subarray(1).toString('utf8')) as { lost?: unknown; detail?: unknown };
        if (typeof m.lost === 'number' && Number.isInteger(m.lost)) lost = m.lost;
        if (typeof m.detail === 'string') detail = m.detail.slice(0, 500);
      } catch {
        /* keep the defaults */
      }
      this.abort(new PeerLostError(lost, `${detail} (seen by rank ${peer})`));
      return;
    }
    if (type !== FrameType.data || f.length < DATA_HEADER) {
      p.conn.destroy(`unexpected frame type ${String(type)}`);
      this.abort(new PeerLostError(peer, `protocol error: unexpected frame type ${String(type)}`));
      return;
    }
    const elemType = f[1]!;
    const last = f[2] === 1;
    const ch = f.readUInt32BE(4);
    const c = this.channel(peer, ch);
    if (elemType > 2 || (c.parts.length && c.partType !== elemType)) {
      this.abort(new PeerLostError(peer, `protocol error: bad element type ${elemType} on channel ${ch}`));
      p.conn.destroy('protocol error');
      return;
    }
    c.partType = elemType;
    c.parts.push(f.subarray(DATA_HEADER));
    if (!last) return;
    const total = c.parts.reduce((a, b) => a + b.length, 0);
    if (total % ELEM[elemType]! !== 0) {
      this.abort(new PeerLostError(peer, `protocol error: ${total} bytes are not whole ${wireTypeName(elemType)} elements`));
      p.conn.destroy('protocol error');
      return;
    }
    const out = allocWire(elemType, total / ELEM[elemType]!);
    const dst = bytesOf(out);
    let off = 0;
    for (const part of c.parts) {
      dst.set(part, off);
      off += part.length;
    }
    c.parts = [];
    const w = c.waiters.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(out);
    } else c.ready.push(out);
  }

  /** Queue `data` for `peer` on channel `ch`; resolves once handed to the kernel. The array must not change until then. */
  send(peer: number, ch: number, data: WireArray): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const p = this.peers.get(peer);
    if (!p) return Promise.reject(new WeftError(`rank ${this.rank}: no connection to rank ${peer}`));
    if (p.left) return Promise.reject(new WeftError(`rank ${peer} has shut down`));
    const type = wireTypeOf(data);
    const bytes = bytesOf(data);
    const frames: Uint8Array[][] = [];
    let off = 0;
    do {
      const n = Math.min(DATA_PART_BYTES, this.maxFrameBytes, bytes.length - off);
      const head = dataHeader(type, off + n >= bytes.length, ch);
      frames.push(n ? [head, bytes.subarray(off, off + n)] : [head]);
      off += n;
    } while (off < bytes.length);
    return p.conn.write(frames).catch((e: Error) => {
      throw this.failure ?? new PeerLostError(peer, `cannot send: ${e.message}`);
    });
  }

  /** Next message from `peer` on `ch`. `what` names the operation in errors. */
  recv(peer: number, ch: number, what: string, timeoutMs = this.timeoutMs): Promise<WireArray> {
    const c = this.channel(peer, ch);
    const ready = c.ready.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    const p = this.peers.get(peer);
    if (!p) return Promise.reject(new WeftError(`rank ${this.rank}: no connection to rank ${peer}`));
    if (p.left) return Promise.reject(new WeftError(`${what}: rank ${peer} has shut down`));
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: null };
      if (Number.isFinite(timeoutMs)) {
        w.timer = setTimeout(() => {
          c.waiters.splice(c.waiters.indexOf(w), 1);
          reject(new CollectiveTimeoutError(`${what}: timed out after ${timeoutMs} ms waiting for rank ${peer}`));
        }, timeoutMs);
      }
      c.waiters.push(w);
    });
  }

  private failWaiters(peer: number, e: Error): void {
    for (const c of this.channels.get(peer)?.values() ?? []) {
      for (const w of c.waiters.splice(0)) {
        if (w.timer) clearTimeout(w.timer);
        w.reject(e);
      }
    }
  }

  get failed(): Error | null {
    return this.failure;
  }

  onAbort(cb: (e: Error) => void): void {
    if (this.failure) cb(this.failure);
    else this.abortListeners.push(cb);
  }

  /** Fail everything now and later with `e`; close every connection. Idempotent (first error wins). */
  abort(e: Error): void {
    if (this.failure || this.closing) return;
    this.failure = e;
    this.log(e.message);
    for (const peer of this.channels.keys()) this.failWaiters(peer, e);
    // Tell the others which rank was lost, so that every rank names it rather than whoever closed first.
    const lost = e instanceof PeerLostError ? e : null;
    const note = Buffer.from(JSON.stringify({ lost: lost?.peer ?? this.rank, detail: lost?.detail ?? `rank ${this.rank} failed: ${e.message}` }), 'utf8');
    const frame = Buffer.concat([Buffer.from([FrameType.abort]), note]);
    for (const [r, p] of this.peers) {
      if (r === lost?.peer || p.left) p.conn.destroy('aborted');
      else {
        p.conn.endWith(frame);
        setTimeout(() => p.conn.destroy('aborted'), 1000).unref();
      }
    }
    this.server?.close();
    for (const cb of this.abortListeners.splice(0)) cb(e);
  }

  /** Orderly goodbye to every peer, then close. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const bye = Buffer.from([FrameType.bye]);
    await Promise.all(
      [...this.peers.values()].map(async (p) => {
        try {
          await p.conn.write([[bye]]);
        } catch {
          /* already gone */
        }
        p.conn.end();
      }),
    );
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
