/**
 * Integrity of the frames after the handshake: each frame ends with
 * HMAC-SHA256(key, sequence number ‖ payload). The keys are derived from the
 * job token and the handshake's two fresh nonces, one per direction, so a
 * frame cannot be altered, replayed, reordered, dropped, reflected back to its
 * sender or moved to another connection without the receiver noticing (the
 * sequence number is implicit: each side counts the frames it has sent and
 * received). Frames are not encrypted: the job's tensors travel in the clear.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const MAC_BYTES = 32;

export interface FrameKeys {
  send: Buffer;
  recv: Buffer;
}

/** This connection's keys for the dialler ('client') or the listener ('server'), from the handshake's nonces. */
export function frameKeys(token: string, serverNonce: Uint8Array, clientNonce: Uint8Array, side: 'client' | 'server'): FrameKeys {
  const key = (dir: string) => createHmac('sha256', token).update(`weft frames ${dir}`).update(serverNonce).update(clientNonce).digest();
  const toServer = key('client->server');
  const toClient = key('server->client');
  return side === 'client' ? { send: toServer, recv: toClient } : { send: toClient, recv: toServer };
}

/** One direction of a connection: seals outgoing frames or opens incoming ones, in order. */
export class FrameMac {
  private seq = 0n;
  private readonly seqBytes = Buffer.alloc(8);

  constructor(private readonly key: Buffer) {}

  private tag(parts: Uint8Array[]): Buffer {
    this.seqBytes.writeBigUInt64BE(this.seq++, 0);
    const h = createHmac('sha256', this.key).update(this.seqBytes);
    for (const p of parts) h.update(p);
    return h.digest();
  }

  /** The MAC to send after the payload `parts` of the next frame. */
  seal(parts: Uint8Array[]): Buffer {
    return this.tag(parts);
  }

  /** The payload of the next frame received (its MAC removed), or why it is refused. */
  open(frame: Buffer): Buffer | string {
    const n = this.seq;
    if (frame.length < MAC_BYTES) return `#${n} is too short to carry its MAC`;
    const body = frame.subarray(0, frame.length - MAC_BYTES);
    if (!timingSafeEqual(frame.subarray(frame.length - MAC_BYTES), this.tag([body]))) {
      return `#${n} failed its integrity check (MAC): altered, replayed, reordered or not from this connection's peer`;
    }
    return body;
  }
}
