import { afterEach, describe, expect, it } from 'vitest';
import type { CommArray, Communicator } from '../communicator.js';
import { TcpCommunicator } from './tcp-communicator.js';
import type { TcpTransport } from './transport.js';
import { worldOf } from './test-world.js';

const live: TcpTransport[] = [];
const world = async (ws: number) => {
  const ts = await worldOf(ws);
  live.push(...ts);
  return ts;
};
afterEach(async () => {
  await Promise.all(live.splice(0).map((t) => t.close()));
});

const vals = (rank: number, n: number, salt: number) => Array.from({ length: n }, (_, i) => ((rank * 7919 + i * 31 + salt * 17) % 97) - 48);
const arr = (type: 'f32' | 'i32', xs: number[]): CommArray => (type === 'f32' ? Float32Array.from(xs) : Int32Array.from(xs));

async function battery(comms: Communicator[]): Promise<void> {
  const ws = comms.length;
  const ranks = comms.map((_, r) => r);
  for (const type of ['f32', 'i32'] as const) {
    // one-shot and two-shot (uneven slices), both ops
    for (const n of [1, 7, 13 * ws * 333, 100_003]) {
      for (const op of ['sum', 'max'] as const) {
        const got = await Promise.all(comms.map((c, r) => c.allReduce(arr(type, vals(r, n, n)), op)));
        const inputs = ranks.map((r) => vals(r, n, n));
        const want = Array.from({ length: n }, (_, i) => {
          const xs = inputs.map((v) => v[i]!);
          return op === 'sum' ? xs.reduce((a, b) => a + b, 0) : Math.max(...xs);
        });
        for (const g of got) expect(Array.from(g)).toEqual(want);
      }
    }
    const ag = await Promise.all(comms.map((c, r) => c.allGather(arr(type, vals(r, 5, 1)))));
    for (const g of ag) expect(Array.from(g)).toEqual(ranks.flatMap((r) => vals(r, 5, 1)));
    const rs = await Promise.all(comms.map((c, r) => c.reduceScatter(arr(type, vals(r, 3 * ws, 2)))));
    const rsIn = ranks.map((r) => vals(r, 3 * ws, 2));
    rs.forEach((g, me) => expect(Array.from(g)).toEqual(Array.from({ length: 3 }, (_, i) => rsIn.reduce((a, v) => a + v[me * 3 + i]!, 0))));
    for (const dst of ranks) {
      const ga = await Promise.all(comms.map((c, r) => c.gather(arr(type, vals(r, 4, 3)), dst)));
      ga.forEach((g, r) => (r === dst ? expect(Array.from(g!)).toEqual(ranks.flatMap((q) => vals(q, 4, 3))) : expect(g).toBeNull()));
    }
    for (const n of [3, 50_001]) {
      for (const src of ranks) {
        const bc = await Promise.all(comms.map((c, r) => c.broadcast(r === src ? arr(type, vals(src, n, 4)) : null, src)));
        for (const b of bc) expect(Array.from(b)).toEqual(vals(src, n, 4));
      }
    }
  }
  // allToAll with uneven and empty chunks
  const a2a = await Promise.all(comms.map((c, r) => c.allToAll(ranks.map((j) => Float32Array.from(vals(r * 10 + j, (r + j) % 3, 5))))));
  a2a.forEach((res, me) => res.forEach((a, i) => expect(Array.from(a)).toEqual(vals(i * 10 + me, (i + me) % 3, 5))));
  // send/recv around the ring, and a message every rank sends to itself through nobody
  await Promise.all(
    comms.map(async (c, r) => {
      const next = (r + 1) % ws;
      const prev = (r - 1 + ws) % ws;
      const [, got] = await Promise.all([c.send(Int32Array.from(vals(r, 9, 6)), next), c.recv(prev)]);
      expect(Array.from(got)).toEqual(vals(prev, 9, 6));
    }),
  );
  const objs = await Promise.all(comms.map((c, r) => c.broadcastObject(r === 1 ? { a: [1, 'x'], b: null } : undefined, 1)));
  for (const o of objs) expect(o).toEqual({ a: [1, 'x'], b: null });
  await Promise.all(comms.map((c) => c.barrier()));
}

describe('TcpCommunicator: every collective against the dense result', () => {
  for (const ws of [2, 3, 4]) {
    it(`world size ${ws}`, async () => {
      const ts = await world(ws);
      const comms = ts.map((t) => new TcpCommunicator(t, 'tp:0', ts.map((_, r) => r), 100));
      await battery(comms);
      // float bits of a two-shot allReduce are the same on every rank
      const n = 70_001;
      const got = await Promise.all(comms.map((c, r) => c.allReduce(Float32Array.from({ length: n }, (_, i) => Math.sin(r * n + i) / 3))));
      for (const g of got) expect(Buffer.from(g.buffer).equals(Buffer.from(got[0]!.buffer))).toBe(true);
    });
  }

  it('a subgroup of the world ([1, 3] of 4) uses only its members', async () => {
    const ts = await world(4);
    const sub = [1, 3].map((r) => new TcpCommunicator(ts[r]!, 'pp:1', [1, 3], 101));
    const got = await Promise.all(sub.map((c, i) => c.allGather(Int32Array.of(i + 10))));
    for (const g of got) expect(Array.from(g)).toEqual([10, 11]);
  });

  it('a 64 MiB allReduce arrives whole (several frames)', async () => {
    const ts = await world(2);
    const comms = ts.map((t) => new TcpCommunicator(t, 'tp:0', [0, 1], 100));
    const n = 16 << 20;
    const got = await Promise.all(comms.map((c, r) => c.allReduce(new Float32Array(n).fill(r + 1))));
    for (const g of got) {
      expect(g.length).toBe(n);
      expect(g[0]).toBe(3);
      expect(g[n - 1]).toBe(3);
    }
  });
});
