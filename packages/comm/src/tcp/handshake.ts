/**
 * Mutual proof that both ends of a connection belong to the job: HMAC-SHA256
 * challenge/response over fresh nonces with the job token as key. The token
 * never crosses the wire. The listener speaks first:
 *   HELLO   magic u32, version u16, server nonce (32)
 *   AUTH    magic u32, version u16, client nonce (32), HMAC(c|sn|cn|info) (32), info JSON
 *   AUTH_OK HMAC(s|cn|sn|reply) (32), reply JSON
 *   REJECT  reason (utf-8), then the listener closes
 * `info` and `reply` are bound into the MACs, so they cannot be swapped.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { FrameType, MAGIC, PROTOCOL_VERSION } from './frame.js';

const NONCE = 32;
const MAC = 32;

export function mac(token: string, label: 'client' | 'server', a: Uint8Array, b: Uint8Array, info: Uint8Array): Buffer {
  return createHmac('sha256', token).update(label).update(a).update(b).update(info).digest();
}

export function newNonce(): Buffer {
  return randomBytes(NONCE);
}

export function helloFrame(nonce: Buffer, version = PROTOCOL_VERSION): Buffer {
  const b = Buffer.alloc(1 + 4 + 2 + NONCE);
  b.writeUInt8(FrameType.hello, 0);
  b.writeUInt32BE(MAGIC, 1);
  b.writeUInt16BE(version, 5);
  nonce.copy(b, 7);
  return b;
}

export function parseHello(f: Buffer): { version: number; nonce: Buffer } | string {
  if (f.length !== 1 + 4 + 2 + NONCE || f[0] !== FrameType.hello) {
    if (f[0] === FrameType.reject) return `the listener refused: ${f.subarray(1).toString('utf8').slice(0, 200)}`;
    return 'the listener does not speak the weft protocol (bad greeting)';
  }
  if (f.readUInt32BE(1) !== MAGIC) return 'the listener does not speak the weft protocol (bad magic)';
  return { version: f.readUInt16BE(5), nonce: Buffer.from(f.subarray(7)) };
}

export function authFrame(token: string, serverNonce: Buffer, info: unknown, version = PROTOCOL_VERSION): Buffer {
  const cn = newNonce();
  const infoBytes = Buffer.from(JSON.stringify(info), 'utf8');
  const b = Buffer.alloc(1 + 4 + 2 + NONCE + MAC + infoBytes.length);
  b.writeUInt8(FrameType.auth, 0);
  b.writeUInt32BE(MAGIC, 1);
  b.writeUInt16BE(version, 5);
  cn.copy(b, 7);
  mac(token, 'client', serverNonce, cn, infoBytes).copy(b, 7 + NONCE);
  infoBytes.copy(b, 7 + NONCE + MAC);
  return b;
}

/** Checks an AUTH frame; a string is the reason to drop the peer. */
export function checkAuth(token: string, serverNonce: Buffer, f: Buffer): { clientNonce: Buffer; info: unknown } | string {
  if (f.length < 7 + NONCE + MAC || f[0] !== FrameType.auth || f.readUInt32BE(1) !== MAGIC) return 'not a weft handshake (garbage or another protocol)';
  const version = f.readUInt16BE(5);
  if (version !== PROTOCOL_VERSION) return `protocol version ${version}, this rank speaks ${PROTOCOL_VERSION}`;
  const cn = f.subarray(7, 7 + NONCE);
  const got = f.subarray(7 + NONCE, 7 + NONCE + MAC);
  const infoBytes = f.subarray(7 + NONCE + MAC);
  if (!timingSafeEqual(got, mac(token, 'client', serverNonce, cn, infoBytes))) return 'authentication failed (wrong job token)';
  let info: unknown;
  try {
    info = JSON.parse(infoBytes.toString('utf8'));
  } catch {
    return 'authenticated, but its introduction is not JSON';
  }
  return { clientNonce: Buffer.from(cn), info };
}

export function authOkFrame(token: string, clientNonce: Buffer, serverNonce: Buffer, reply: unknown): Buffer {
  const replyBytes = Buffer.from(JSON.stringify(reply ?? null), 'utf8');
  return Buffer.concat([Buffer.from([FrameType.authOk]), mac(token, 'server', clientNonce, serverNonce, replyBytes), replyBytes]);
}

export function checkAuthOk(token: string, clientNonce: Buffer, serverNonce: Buffer, f: Buffer): { reply: unknown } | string {
  if (f[0] === FrameType.reject) return `the listener refused: ${f.subarray(1).toString('utf8').slice(0, 200)}`;
  if (f.length < 1 + MAC || f[0] !== FrameType.authOk) return 'bad answer to the handshake';
  const replyBytes = f.subarray(1 + MAC);
  if (!timingSafeEqual(f.subarray(1, 1 + MAC), mac(token, 'server', clientNonce, serverNonce, replyBytes))) {
    return 'the listener failed to prove it holds the job token';
  }
  try {
    return { reply: JSON.parse(replyBytes.toString('utf8')) as unknown };
  } catch {
    return 'the listener answered with something that is not JSON';
  }
}

export function rejectFrame(reason: string): Buffer {
  return Buffer.concat([Buffer.from([FrameType.reject]), Buffer.from(reason.slice(0, 200), 'utf8')]);
}

/** The client nonce inside an AUTH frame we built (to check the answer against). */
export function clientNonceOf(auth: Buffer): Buffer {
  return Buffer.from(auth.subarray(7, 7 + NONCE));
}
