/**
 * What goes on the wire between ranks: Nagle's algorithm is off on every rank
 * socket (dialled and accepted), every frame after the handshake carries a MAC
 * that a man in the middle cannot forge, and ranks listen where they are told.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rendezvous } from '../rendezvous/rendezvous.js';
import { FrameReader, FrameType, lengthPrefix } from './frame.js';
import { MAC_BYTES } from './frame-mac.js';
import { TcpCommunicator } from './tcp-communicator.js';
import type { TcpTransport } from './transport.js';
import { freePort, worldOf } from './test-world.js';

const TOKEN = 'wire-test-token-0123456789abcdef';
const live: TcpTransport[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((t) => t.close()));
  for (const s of servers.splice(0)) s.close();
});

/** A rank's sockets to its peers (the transport keeps them private: read here, for the test only). */
function socketsOf(t: TcpTransport): Socket[] {
  const peers = (t as unknown as { peers: Map<number, { conn: { socket: Socket } }> }).peers;
  return [...peers.values()].map((p) => p.conn.socket);
}

/**
 * Whether Nagle's algorithm is off on `s`. Node keeps the setting under the symbol kSetNoDelay (set by
 * setNoDelay, connect({noDelay}) and createServer({noDelay})) and offers no getter; fail loudly if a
 * Node version drops it, rather than pass without looking.
 */
function noDelay(s: Socket): boolean {
  const k = Object.getOwnPropertySymbols(s).find((sym) => sym.description === 'kSetNoDelay');
  if (!k) throw new Error(`Node ${process.version} keeps no kSetNoDelay on sockets: this test needs another way to read TCP_NODELAY`);
  return (s as unknown as Record<symbol, unknown>)[k] === true;
}

describe("Nagle's algorithm", () => {
  it('is off on every rank socket, dialled and accepted, in a world of 4', async () => {
    const ts = await worldOf(4);
    live.push(...ts);
    const seen: string[] = [];
    for (const t of ts) for (const s of socketsOf(t)) seen.push(`rank ${t.rank} ${s.localPort}->${s.remotePort}: ${noDelay(s) ? 'off' : 'ON'}`);
    // 4 ranks: 6 connections, each seen from both ends.
    expect(seen.length).toBe(12);
    expect(seen.filter((l) => l.endsWith('ON'))).toEqual([]);
  });

  it('small messages go back and forth without delayed-ACK stalls (median round trip far below 40 ms)', async () => {
    const ts = await worldOf(2);
    live.push(...ts);
    const [a, b] = ts.map((t) => new TcpCommunicator(t, 'tp:0', [0, 1], 100));
    const rtts: number[] = [];
    for (let i = 0; i < 40; i++) {
      const t0 = performance.now();
      // Header and payload are written back to back: with Nagle on, the payload waits for the peer's delayed ACK.
      await Promise.all([a!.send(Float32Array.of(i, i), 1), b!.recv(0).then((x) => b!.send(x, 0)), a!.recv(1)]);
      rtts.push(performance.now() - t0);
    }
    rtts.sort((x, y) => x - y);
    expect(rtts[20]!).toBeLessThan(20);
  });
});

type Mutate = (frame: Buffer, index: number) => Buffer[];

/**
 * A man in the middle on loopback: forwards both ways, reading the dialler's frames after its AUTH and
 * handing each DATA/BYE frame (its MAC included) to `mutate`, whose frames go on instead.
 */
async function middleman(target: number, mutate: Mutate): Promise<number> {
  const port = await freePort();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.on('data', (c) => client.write(c));
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    const reader = new FrameReader(1 << 30);
    let n = 0;
    let data = 0;
    client.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk)) {
        // Frame 0 is AUTH (handshake): through untouched. After it, every frame is MACed.
        const out = n++ === 0 ? [f] : mutate(f, data++);
        for (const o of out) upstream.write(Buffer.concat([lengthPrefix(o.length), o]));
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return port;
}

/** A world of 2 whose rank 1 reaches the master through `mutate`; returns rank 0's and rank 1's communicators and rank 0's log. */
async function tamperedWorld(mutate: Mutate, frameMac = true) {
  const masterPort = await freePort();
  const via = await middleman(masterPort, mutate);
  const logs: string[] = [];
  const base = { worldSize: 2, token: TOKEN, masterAddr: '127.0.0.1', timeoutMs: 5000, frameMac };
  const ts = await Promise.all([
    rendezvous({ ...base, rank: 0, masterPort, log: (l) => logs.push(l) }),
    rendezvous({ ...base, rank: 1, masterPort: via, log: () => {} }),
  ]);
  live.push(...ts);
  return { comms: ts.map((t) => new TcpCommunicator(t, 'tp:0', [0, 1], 100)), logs };
}

/** Rank 1's frames after the rendezvous (frame 0 carries its address): the allReduce payload. */
const flipFirstFloat: Mutate = (f, i) => {
  if (i >= 1 && f[0] === FrameType.data && f.length > 8 + 4) {
    const g = Buffer.from(f);
    g[8 + 3]! ^= 0x40; // a bit of the first float's exponent
    return [g];
  }
  return [f];
};

describe('frame integrity (MAC)', () => {
  it('a frame altered on the way is refused; the rank names the peer and says why', async () => {
    const { comms, logs } = await tamperedWorld(flipFirstFloat);
    // (Rank 1 may finish: rank 0's half reached it untouched. Rank 0 must not use what it got.)
    const [r0] = await Promise.allSettled(comms.map((c) => c.allReduce(Float32Array.of(1, 2, 3))));
    expect(r0!.status).toBe('rejected');
    expect(String((r0 as PromiseRejectedResult).reason)).toMatch(/lost rank 1: .*#1 failed its integrity check \(MAC\)/);
    expect(logs.join('\n')).toMatch(/integrity check/);
  });

  it('a replayed frame, a dropped frame and a forged MAC are refused too', async () => {
    const cases: [string, Mutate][] = [
      ['replayed', (f, i) => (i === 1 ? [f, f] : [f])],
      ['dropped', (f, i) => (i === 1 ? [] : [f])],
      ['forged', (f, i) => (i === 1 ? [Buffer.concat([f.subarray(0, f.length - MAC_BYTES), Buffer.alloc(MAC_BYTES)])] : [f])],
    ];
    for (const [what, mutate] of cases) {
      const { comms } = await tamperedWorld(mutate);
      const r0 = comms[0]!.allReduce(Float32Array.of(1));
      const r1 = comms[1]!.allReduce(Float32Array.of(2));
      // Dropped: rank 0 sees the next frame (the second allReduce's) under the wrong sequence number.
      const r0b = r0.then(() => comms[0]!.allReduce(Float32Array.of(1)));
      void r1.then(() => comms[1]!.allReduce(Float32Array.of(2))).catch(() => {});
      await expect(r0b, what).rejects.toThrow(/integrity check \(MAC\)/);
    }
  });

  it('without the MAC (frameMac: false) the same alteration goes through unseen: the MAC is what catches it', async () => {
    const { comms } = await tamperedWorld(flipFirstFloat, false);
    const got = await Promise.all(comms.map((c) => c.allReduce(Float32Array.of(1, 2, 3))));
    expect(Array.from(got[0]!)).not.toEqual([2, 4, 6]);
  });

  it('a rank started without the MAC cannot join a job that has it', async () => {
    const masterPort = await freePort();
    const base = { worldSize: 2, token: TOKEN, masterAddr: '127.0.0.1', masterPort, timeoutMs: 1500, log: () => {} };
    const m = rendezvous({ ...base, rank: 0 });
    m.catch(() => {});
    await expect(rendezvous({ ...base, rank: 1, frameMac: false })).rejects.toThrow(/rank 1 sends frames without a MAC, rank 0 MACed frames/);
    await expect(m).rejects.toThrow(/missing: rank 1/);
  });
});

describe('rank ports', () => {
  it('ranks other than 0 listen on the first free ports of listenPorts, and say so when the range is full', async () => {
    const first = await freePort();
    // A busy first port: the ranks move on to the next ones.
    const busy = createServer();
    servers.push(busy);
    await new Promise<void>((r) => busy.listen(first, '127.0.0.1', r));
    const range = { first, last: first + 40 };
    const masterPort = await freePort();
    const base = { worldSize: 3, token: TOKEN, masterAddr: '127.0.0.1', masterPort, timeoutMs: 5000, log: () => {}, listenPorts: range };
    const ts = await Promise.all([0, 1, 2].map((rank) => rendezvous({ ...base, rank })));
    live.push(...ts);
    expect(ts[0]!.listenPort).toBe(masterPort);
    for (const t of ts.slice(1)) {
      expect(t.listenPort).toBeGreaterThan(first);
      expect(t.listenPort).toBeLessThanOrEqual(range.last);
    }
    const m2 = await freePort();
    const full = { ...base, worldSize: 2, masterPort: m2, timeoutMs: 1500, listenPorts: { first, last: first } };
    const master = rendezvous({ ...full, rank: 0 });
    master.catch(() => {});
    await expect(rendezvous({ ...full, rank: 1 })).rejects.toThrow(new RegExp(`every port of ${first}-${first} on 127.0.0.1 is in use`));
  });
});
