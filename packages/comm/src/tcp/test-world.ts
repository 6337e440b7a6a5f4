/** Test helpers: a world of TCP ranks inside one process, on loopback. */
import { randomBytes } from 'node:crypto';
import { rendezvous } from '../rendezvous/rendezvous.js';
import type { TcpTransport } from './transport.js';

/** `ws` ranks in this process, each with its own sockets, joined through a real rendezvous on loopback. */
export async function worldOf(ws: number, opts: { timeoutMs?: number; token?: string; log?: (l: string) => void } = {}): Promise<TcpTransport[]> {
  const token = opts.token ?? randomBytes(16).toString('hex');
  const masterPort = await freePort();
  const ts = await Promise.all(
    Array.from({ length: ws }, (_, rank) =>
      rendezvous({ rank, worldSize: ws, token, masterAddr: '127.0.0.1', masterPort, timeoutMs: opts.timeoutMs ?? 10_000, log: opts.log ?? (() => {}) }),
    ),
  );
  return ts;
}

export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

