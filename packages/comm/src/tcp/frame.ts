/**
 * Wire format of the TCP transport: every frame is a 4-byte big-endian length
 * then that many bytes. A reader enforces a size limit before buffering a
 * frame, so a peer cannot make us allocate what it claims. Frame types:
 * handshake (HELLO / AUTH / AUTH_OK / REJECT, see handshake.ts), DATA (one
 * part of a message on a channel), BYE (orderly departure), ABORT (a rank was
 * lost). Every frame after the handshake ends with a MAC (frame-mac.ts).
 */
import { WeftError } from '@weft/core';

/** 2: frames after the handshake carry a MAC. */
export const PROTOCOL_VERSION = 2;
export const MAGIC = 0x57454654; // 'WEFT'

export const FrameType = { hello: 1, auth: 2, authOk: 3, reject: 4, data: 5, bye: 6, abort: 7 } as const;

/** Before a peer has proved it belongs to the job, frames are small. */
export const HANDSHAKE_MAX_FRAME = 4096;
/** Default: larger messages are cut into parts of at most DATA_PART_BYTES. */
export const DEFAULT_MAX_FRAME = 64 << 20;
export const DATA_PART_BYTES = 16 << 20;
export const DATA_HEADER = 8; // type, element type, flags, pad, channel u32

export class FrameError extends WeftError {
  override name = 'FrameError';
}

/** Incremental frame parser: push socket chunks, get whole frames; throws FrameError on an oversized length. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1;
  constructor(public maxFrame: number) {}

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 4) break;
        const len = this.take(4).readUInt32BE(0);
        if (len > this.maxFrame) throw new FrameError(`frame of ${len} bytes is over the limit of ${this.maxFrame} bytes`);
        this.need = len;
      }
      if (this.buffered < this.need) break;
      out.push(this.take(this.need));
      this.need = -1;
    }
    return out;
  }

  private take(n: number): Buffer {
    // Concatenate once per frame: a 16 MiB frame arriving in 64 KiB reads is one copy, not 256.
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    const head = this.chunks[0]!;
    const out = head.subarray(0, n);
    if (head.length === n) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    this.buffered -= n;
    return out;
  }
}

export function lengthPrefix(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** `payload` with its length prefix: one whole frame on the wire. */
export function framed(payload: Buffer): Buffer {
  return Buffer.concat([lengthPrefix(payload.length), payload]);
}

/** Header of one DATA frame's payload (type, element type, last-part flag, channel): the data follows. */
export function dataHeader(elemType: number, last: boolean, channel: number): Buffer {
  const b = Buffer.allocUnsafe(DATA_HEADER);
  b.writeUInt8(FrameType.data, 0);
  b.writeUInt8(elemType, 1);
  b.writeUInt8(last ? 1 : 0, 2);
  b.writeUInt8(0, 3);
  b.writeUInt32BE(channel, 4);
  return b;
}
