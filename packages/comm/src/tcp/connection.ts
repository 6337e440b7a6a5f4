/**
 * One authenticated TCP connection: the handshake on either side, then DATA
 * and BYE frames handed to the owner, each carrying an HMAC under a key of
 * this connection and direction (see frame-mac.ts). A connection that fails
 * the handshake, sends garbage, a frame over the limit or one whose MAC does
 * not check out is destroyed with a reason; it never throws into the caller's
 * event loop. Every socket, dialled or accepted, has Nagle's algorithm off:
 * a message is a header and a payload written back to back, and with Nagle on
 * the payload waits for the ACK of the header, which the peer delays ~40 ms.
 */
import { connect, type Socket } from 'node:net';
import { WeftError } from '@weft/core';
import { FrameMac, frameKeys, MAC_BYTES, type FrameKeys } from './frame-mac.js';
import { FrameError, FrameReader, FrameType, framed, HANDSHAKE_MAX_FRAME, lengthPrefix } from './frame.js';
import { authFrame, authOkFrame, checkAuth, checkAuthOk, clientNonceOf, helloFrame, newNonce, parseHello, rejectFrame } from './handshake.js';

export interface ConnHandlers {
  onFrame(frame: Buffer): void;
  /** Socket closed or failed; `reason` says why (null: closed cleanly by us). */
  onClose(reason: string | null): void;
}

export class AuthedConn {
  private handlers: ConnHandlers | null = null;
  private early: Buffer[] = [];
  private closedBy: string | null = null;
  private ended = false;
  private readonly sendMac: FrameMac | null;
  private readonly recvMac: FrameMac | null;

  constructor(
    readonly socket: Socket,
    private readonly reader: FrameReader,
    readonly remote: string,
    maxFrame: number,
    /** null: frames travel without a MAC (both ends must agree; rendezvous checks it). */
    keys: FrameKeys | null,
  ) {
    socket.setNoDelay(true);
    this.sendMac = keys && new FrameMac(keys.send);
    this.recvMac = keys && new FrameMac(keys.recv);
    reader.maxFrame = maxFrame + (keys ? MAC_BYTES : 0);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => (this.closedBy ??= e.message));
    socket.on('close', () => {
      this.ended = true;
      this.handlers?.onClose(this.closedBy ?? 'the peer closed the connection');
    });
  }

  /** Frames that arrived before attach() are delivered first. */
  attach(h: ConnHandlers): void {
    this.handlers = h;
    for (const f of this.early.splice(0)) h.onFrame(f);
    if (this.ended) h.onClose(this.closedBy ?? 'the peer closed the connection');
  }

  /** Frames that were buffered in the reader along with the handshake's last frame. */
  feed(frames: Buffer[]): void {
    for (const f of frames) this.deliver(f);
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (e) {
      this.destroy(`protocol error from ${this.remote}: ${(e as Error).message}`);
      return;
    }
    for (const f of frames) this.deliver(f);
  }

  private deliver(f: Buffer): void {
    if (this.socket.destroyed) return;
    let body = f;
    if (this.recvMac) {
      const checked = this.recvMac.open(f);
      if (typeof checked === 'string') {
        this.destroy(`frame from ${this.remote} ${checked}`);
        return;
      }
      body = checked;
    }
    if (this.handlers) this.handlers.onFrame(body);
    else this.early.push(body);
  }

  /** The bytes of whole frames (length prefix, payload parts, MAC) in the order they go on the wire. */
  private wire(frames: Uint8Array[][]): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const parts of frames) {
      const n = parts.reduce((a, p) => a + p.length, 0);
      out.push(lengthPrefix(n + (this.sendMac ? MAC_BYTES : 0)), ...parts);
      if (this.sendMac) out.push(this.sendMac.seal(parts));
    }
    return out;
  }

  /** Send whole frames, each given as its payload's parts; resolves once handed to the kernel. */
  write(frames: Uint8Array[][]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ended || this.socket.destroyed) {
        reject(new WeftError(`connection to ${this.remote} is closed`));
        return;
      }
      const bytes = this.wire(frames);
      // One writev for the lot: fewer syscalls and segments than a write per part.
      this.socket.cork();
      for (let i = 0; i < bytes.length - 1; i++) this.socket.write(bytes[i]!);
      this.socket.write(bytes[bytes.length - 1]!, (e) => (e ? reject(e) : resolve()));
      this.socket.uncork();
    });
  }

  /** Send one last frame, then FIN (no error if the connection is already gone). */
  endWith(payload: Uint8Array): void {
    if (this.ended || this.socket.destroyed) return;
    this.closedBy ??= 'closed';
    this.socket.cork();
    for (const b of this.wire([[payload]])) this.socket.write(b);
    this.socket.end();
  }

  /** Close with a reason (logged by the owner through onClose). */
  destroy(reason: string): void {
    this.closedBy ??= reason;
    this.socket.destroy();
  }

  /** Orderly close: flush what is queued, then FIN. */
  end(): void {
    this.closedBy ??= 'closed';
    this.socket.end();
  }
}

export interface HandshakeOptions {
  token: string;
  /** The handshake must finish within this. */
  timeoutMs: number;
  /** Frame limit once authenticated (payload bytes, the MAC not counted). */
  maxFrame: number;
  /** MAC every frame after the handshake (default true); both ends must agree. */
  frameMac?: boolean;
}

/** Read frames until `step` returns a value (or a string: the reason to fail). */
function handshakeReader(socket: Socket, reader: FrameReader, timeoutMs: number, what: string) {
  const pending: Buffer[] = [];
  let waiter: ((f: Buffer | Error) => void) | null = null;
  let failure: Error | null = null;
  const fail = (e: Error) => {
    failure ??= e;
    waiter?.(failure);
    waiter = null;
  };
  const timer = setTimeout(() => fail(new WeftError(`${what}: no handshake within ${timeoutMs} ms`)), timeoutMs);
  const onData = (chunk: Buffer) => {
    try {
      for (const f of reader.push(chunk)) pending.push(f);
    } catch (e) {
      fail(new WeftError(`${what}: ${(e as FrameError).message} during the handshake`));
      return;
    }
    if (waiter && pending.length) {
      const w = waiter;
      waiter = null;
      w(pending.shift()!);
    }
  };
  const onError = (e: Error) => fail(new WeftError(`${what}: ${e.message}`));
  const onClose = () => fail(new WeftError(`${what}: connection closed during the handshake`));
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
  return {
    next(): Promise<Buffer> {
      if (failure) return Promise.reject(failure);
      const f = pending.shift();
      if (f) return Promise.resolve(f);
      return new Promise((res, rej) => (waiter = (x) => (x instanceof Error ? rej(x) : res(x))));
    },
    /** Frames read past the handshake. */
    rest(): Buffer[] {
      return pending.splice(0);
    },
    done() {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    },
  };
}

/**
 * Listener side. `admit(info)` decides (after the MAC checked out) whether the
 * peer is welcome: a reply to send back, or a string reason to refuse.
 */
export async function acceptHandshake(
  socket: Socket,
  opts: HandshakeOptions,
  admit: (info: unknown) => { reply: unknown } | string,
): Promise<{ conn: AuthedConn; info: unknown }> {
  socket.setNoDelay(true);
  const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  const reader = new FrameReader(HANDSHAKE_MAX_FRAME);
  const hs = handshakeReader(socket, reader, opts.timeoutMs, `peer ${remote}`);
  try {
    const sn = newNonce();
    socket.write(framed(helloFrame(sn)));
    const f = await hs.next();
    const checked = checkAuth(opts.token, sn, f);
    const verdict = typeof checked === 'string' ? checked : admit(checked.info);
    if (typeof verdict === 'string' || typeof checked === 'string') {
      const reason = typeof checked === 'string' ? checked : `refused: ${verdict as string}`;
      const rej = rejectFrame(typeof checked === 'string' ? checked : (verdict as string));
      socket.end(framed(rej));
      throw new WeftError(`peer ${remote}: ${reason}`);
    }
    const ok = authOkFrame(opts.token, checked.clientNonce, sn, verdict.reply);
    const conn = new AuthedConn(socket, reader, remote, opts.maxFrame, opts.frameMac === false ? null : frameKeys(opts.token, sn, checked.clientNonce, 'server'));
    conn.feed(hs.rest());
    socket.write(framed(ok));
    return { conn, info: checked.info };
  } catch (e) {
    socket.on('error', () => {});
    socket.destroy();
    throw e;
  } finally {
    hs.done();
  }
}

/** Dialler side: connect, prove the token, check the listener proves it too. */
export async function dialHandshake(host: string, port: number, info: unknown, opts: HandshakeOptions): Promise<{ conn: AuthedConn; reply: unknown }> {
  const socket = connect({ host, port, noDelay: true });
  const remote = `${host}:${port}`;
  const reader = new FrameReader(HANDSHAKE_MAX_FRAME);
  const hs = handshakeReader(socket, reader, opts.timeoutMs, remote);
  try {
    const hello = parseHello(await hs.next());
    if (typeof hello === 'string') throw new WeftError(`${remote}: ${hello}`);
    const auth = authFrame(opts.token, hello.nonce, info);
    socket.write(framed(auth));
    const cn = clientNonceOf(auth);
    const ans = checkAuthOk(opts.token, cn, hello.nonce, await hs.next());
    if (typeof ans === 'string') throw new WeftError(`${remote}: ${ans}`);
    const conn = new AuthedConn(socket, reader, remote, opts.maxFrame, opts.frameMac === false ? null : frameKeys(opts.token, hello.nonce, cn, 'client'));
    conn.feed(hs.rest());
    return { conn, reply: ans.reply };
  } catch (e) {
    socket.on('error', () => {});
    socket.destroy();
    throw e;
  } finally {
    hs.done();
  }
}

export { FrameType };
