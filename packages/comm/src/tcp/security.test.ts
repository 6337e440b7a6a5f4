/** Hostile peers at a live rank: garbage, oversized frames, wrong tokens, another protocol version, silence. None may crash or stall the group. */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { framed, lengthPrefix, MAGIC } from './frame.js';
import { authFrame, parseHello } from './handshake.js';
import { dialHandshake } from './connection.js';
import { rendezvous, RendezvousError } from '../rendezvous/rendezvous.js';
import { TcpCommunicator } from './tcp-communicator.js';
import type { TcpTransport } from './transport.js';
import { freePort } from './test-world.js';

const TOKEN = 'a-token-of-the-job-0123456789';
const live: TcpTransport[] = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((t) => t.close()));
});

/** Open a raw socket, send `bytes`, resolve with what came back when the rank closes it (or after 3 s). */
function poke(port: number, bytes: (hello: Buffer) => Buffer | null): Promise<{ closed: boolean; got: Buffer }> {
  return new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      res({ closed: false, got: Buffer.concat(chunks) });
    }, 3000);
    s.on('data', (c) => {
      chunks.push(c);
      if (!sent) {
        sent = true;
        const b = bytes(Buffer.concat(chunks).subarray(4));
        if (b) s.write(b);
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      res({ closed: true, got: Buffer.concat(chunks) });
    });
  });
}

describe('a live rank under attack', () => {
  it('drops garbage, oversized frames, wrong tokens and other versions with a logged reason, and the group still works', async () => {
    const port = await freePort();
    const logs: string[] = [];
    const master = rendezvous({ rank: 0, worldSize: 2, token: TOKEN, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 15_000, log: (l) => logs.push(l) });
    await new Promise((r) => setTimeout(r, 100));
    const results = await Promise.all([
      poke(port, () => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), // length prefix "GET " = 1.2 GB: over the limit
      poke(port, () => framed(Buffer.from('not a handshake at all'))),
      poke(port, () => lengthPrefix(100 << 20)), // claims a 100 MiB frame
      poke(port, (h) => {
        const hello = parseHello(h.subarray(0, 39));
        return typeof hello === 'string' ? null : framed(authFrame('the-wrong-token-0123456789', hello.nonce, { purpose: 'join', rank: 1, worldSize: 2, fingerprint: '' }));
      }),
      poke(port, (h) => {
        const hello = parseHello(h.subarray(0, 39));
        return typeof hello === 'string' ? null : framed(authFrame(TOKEN, hello.nonce, { purpose: 'join', rank: 1, worldSize: 2, fingerprint: '' }, 99));
      }),
      poke(port, (h) => {
        const hello = parseHello(h.subarray(0, 39));
        // The right token, but a rank outside the world.
        return typeof hello === 'string' ? null : framed(authFrame(TOKEN, hello.nonce, { purpose: 'join', rank: 7, worldSize: 2, fingerprint: '' }));
      }),
    ]);
    for (const r of results) expect(r.closed).toBe(true);
    // The token never appears on the wire.
    for (const r of results) expect(r.got.includes(Buffer.from(TOKEN))).toBe(false);
    const text = logs.join('\n');
    expect(text).toMatch(/over the limit/);
    expect(text).toMatch(/not a weft handshake/);
    expect(text).toMatch(/wrong job token/);
    expect(text).toMatch(/protocol version 99/);
    expect(text).toMatch(/rank 7 is outside the world of 2/);
    // The real rank 1 still joins and the group works.
    const member = rendezvous({ rank: 1, worldSize: 2, token: TOKEN, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 15_000, log: () => {} });
    const ts = await Promise.all([master, member]);
    live.push(...ts);
    const comms = ts.map((t) => new TcpCommunicator(t, 'tp:0', [0, 1], 100));
    // A silent connection (opened, never speaks) must not stall a collective.
    const silent = connect({ host: '127.0.0.1', port });
    silent.on('error', () => {});
    const got = await Promise.all(comms.map((c, r) => c.allReduce(Float32Array.of(r, 1))));
    for (const g of got) expect(Array.from(g)).toEqual([1, 2]);
    silent.destroy();
  });

  it('a rank with the wrong token cannot join and says why; a listener without the token is not trusted', async () => {
    const port = await freePort();
    const master = rendezvous({ rank: 0, worldSize: 2, token: TOKEN, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 3000, log: () => {} });
    await expect(
      rendezvous({ rank: 1, worldSize: 2, token: 'wrong-token-wrong-token', masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 3000, log: () => {} }),
    ).rejects.toThrow(/wrong job token/);
    await expect(master).rejects.toThrow(RendezvousError);
    // The other direction: an impostor listener cannot prove the token, so the dialler refuses it.
    const impostorPort = await freePort();
    const impostor = rendezvous({ rank: 0, worldSize: 2, token: 'impostor-token-123456', masterAddr: '127.0.0.1', masterPort: impostorPort, timeoutMs: 2000, log: () => {} });
    impostor.catch(() => {});
    await expect(dialHandshake('127.0.0.1', impostorPort, { purpose: 'join', rank: 1, worldSize: 2, fingerprint: '' }, { token: TOKEN, timeoutMs: 2000, maxFrame: 1 << 20 })).rejects.toThrow(
      /wrong job token|prove/,
    );
  });

  it('an authenticated peer sending a frame over the limit is dropped and the others get a clear error, not a hang', async () => {
    const port = await freePort();
    const ts = await Promise.all(
      [0, 1, 2].map((rank) => rendezvous({ rank, worldSize: 3, token: TOKEN, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 5000, maxFrameBytes: 1 << 20, log: () => {} })),
    );
    live.push(...ts);
    // Rank 2 misbehaves at the socket level: a header claiming 512 MiB.
    const sock = (ts[2] as unknown as { peers: Map<number, { conn: { socket: import('node:net').Socket } }> }).peers.get(0)!.conn.socket;
    sock.write(lengthPrefix(512 << 20));
    const c0 = new TcpCommunicator(ts[0]!, 'tp:0', [0, 1, 2], 100);
    const c1 = new TcpCommunicator(ts[1]!, 'tp:0', [0, 1, 2], 100);
    const t0 = Date.now();
    await expect(c0.allReduce(Float32Array.of(1))).rejects.toThrow(/lost rank 2: .*over the limit/);
    // Rank 1 waits on rank 0 (aborted, so its connection closes): it learns quickly too.
    await expect(c1.allReduce(Float32Array.of(1))).rejects.toThrow(/lost rank/);
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});

describe('rendezvous', () => {
  it('times out naming the ranks that never joined', async () => {
    const port = await freePort();
    const opts = { worldSize: 4, token: TOKEN, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 1500, log: () => {} };
    const joins = [0, 1, 3].map((rank) => rendezvous({ ...opts, rank }));
    const outcome = await Promise.allSettled(joins);
    for (const o of outcome) expect(o.status).toBe('rejected');
    expect(String((outcome[0] as PromiseRejectedResult).reason)).toMatch(/3 of 4 ranks joined; missing: rank 2/);
    expect(String((outcome[1] as PromiseRejectedResult).reason)).toMatch(/missing: rank 2/);
  });

  it('a master that never comes up: a clear message naming the address', async () => {
    const port = await freePort();
    await expect(rendezvous({ rank: 1, worldSize: 2, token: TOKEN, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 800, log: () => {} })).rejects.toThrow(
      new RegExp(`could not join the master at 127.0.0.1:${port} within 800 ms`),
    );
  });

  it('refuses a rank started with other settings', async () => {
    const port = await freePort();
    const base = { worldSize: 2, token: TOKEN, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 1500, log: () => {} };
    const m = rendezvous({ ...base, rank: 0, fingerprint: 'tp=2' });
    m.catch(() => {});
    await expect(rendezvous({ ...base, rank: 1, fingerprint: 'tp=1' })).rejects.toThrow(/other settings/);
    await expect(m).rejects.toThrow(/missing: rank 1/);
  });
});
