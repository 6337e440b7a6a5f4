import { CollectiveTimeoutError } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { MessageQueue, MessageQueueClosedError, liveRankWorkers, spawnRanks } from './index.js';
import type { DriverReport } from './test-entries/driver.js';

/** Writer and readers on one thread: every side waits asynchronously, so they interleave. */
function queue(nReaders: number, maxChunks: number, maxChunkBytes: number) {
  const writer = MessageQueue.create({ name: 'test mq', nReaders, maxChunks, maxChunkBytes, blocking: false, timeoutMs: 5000 });
  const readers = Array.from({ length: nReaders }, (_, i) => MessageQueue.attach(writer.handle(), i, { blocking: false, timeoutMs: 5000 }));
  return { writer, readers };
}

describe('MessageQueue, one thread', () => {
  it('wraps around the ring over many messages, every reader sees all in order', async () => {
    const { writer, readers } = queue(3, 4, 256);
    const n = 50;
    const sent = Array.from({ length: n }, (_, i) => ({ i, text: `message ${i}`, list: Array.from({ length: i % 7 }, (_, k) => k) }));
    const got: unknown[][] = readers.map(() => []);
    const reading = readers.map(async (r, ri) => {
      for (let i = 0; i < n; i++) got[ri]!.push(await r.dequeue());
    });
    for (const m of sent) await writer.enqueue(m);
    await Promise.all(reading);
    for (const g of got) expect(g).toEqual(sent);
  });

  it('carries a message much larger than a chunk (and more chunks than the ring holds), JSON and raw', async () => {
    const { writer, readers } = queue(2, 3, 128);
    const big = { text: 'é'.repeat(3000), n: 42 };
    const raw = Float32Array.from({ length: 1000 }, (_, i) => i / 3);
    const ints = Int32Array.from({ length: 77 }, (_, i) => -i);
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => i & 255);
    const reading = readers.map(async (r) => [await r.dequeue(), await r.dequeue(), await r.dequeue(), await r.dequeue(), await r.dequeue()]);
    await writer.enqueue(big);
    await writer.enqueue(raw);
    await writer.enqueue(ints);
    await writer.enqueue(bytes);
    await writer.enqueue(undefined);
    for (const [a, b, c, d, e] of await Promise.all(reading)) {
      expect(a).toEqual(big);
      expect(b).toBeInstanceOf(Float32Array);
      expect(Array.from(b as Float32Array)).toEqual(Array.from(raw));
      expect(c).toEqual(ints);
      expect(d).toEqual(bytes);
      expect(e).toBeUndefined();
    }
  });

  it('a stuck reader: the writer times out naming it', async () => {
    const writer = MessageQueue.create({ name: 'stuck mq', nReaders: 3, maxChunks: 2, maxChunkBytes: 64, readerLabels: ['rank 1', 'rank 2', 'rank 3'] });
    const readers = [0, 2].map((i) => MessageQueue.attach(writer.handle(), i, { blocking: false }));
    const reading = readers.map(async (r) => [await r.dequeue(), await r.dequeue()]);
    await writer.enqueue('a');
    await writer.enqueue('b');
    expect(await Promise.all(reading)).toEqual([['a', 'b'], ['a', 'b']]);
    const t0 = performance.now();
    const err = await writer.enqueue('c', 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CollectiveTimeoutError);
    expect((err as Error).message).toMatch(/MessageQueue 'stuck mq' enqueue timed out after 300 ms: no free chunk of 2; rank 2 has not read chunk 0/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('a reader with nothing to read times out; close() ends waiting readers', async () => {
    const { writer, readers } = queue(2, 2, 64);
    await expect(readers[0]!.dequeue(100)).rejects.toThrow(/dequeue timed out after 100 ms on reader 0: the writer sent nothing/);
    const waiting = readers[1]!.dequeue(Infinity);
    await writer.enqueue(1);
    expect(await waiting).toBe(1);
    const pending = readers[1]!.dequeue(Infinity);
    writer.close();
    await expect(pending).rejects.toBeInstanceOf(MessageQueueClosedError);
    await expect(writer.enqueue(2)).rejects.toBeInstanceOf(MessageQueueClosedError);
  });

  it('roles are enforced', async () => {
    const { writer, readers } = queue(1, 2, 64);
    await expect(readers[0]!.enqueue(1)).rejects.toThrow(/cannot enqueue/);
    await expect(writer.dequeue()).rejects.toThrow(/cannot dequeue/);
    expect(() => MessageQueue.attach(writer.handle(), 1)).toThrow(/out of range/);
  });
});

describe('MessageQueue, driver on the main thread, ranks on workers', () => {
  it('broadcasts many messages and large arrays to every rank; close ends their loops', async () => {
    const pool = await spawnRanks({ parallel: { tp: 2, dp: 2 }, entry: new URL('./test-entries/driver.ts', import.meta.url), backend: 'cpu' });
    const hellos: [number, unknown][] = [];
    pool.onMessage((rank, msg) => hellos.push([rank, msg]));
    const n = 40; // five times around the default 8-chunk ring
    for (let i = 0; i < n; i++) await pool.broadcast({ step: i, tokens: [i, i + 1, i + 2] });
    const big = Float32Array.from({ length: 700_000 }, (_, i) => i % 10); // 2.8 MB: spans three 1 MiB chunks
    await pool.broadcast(big);
    await pool.broadcast({ cmd: 'relay' });
    pool.close();
    const reports = (await pool.results()) as DriverReport[];
    await pool.terminate();
    expect(pool.liveWorkers()).toBe(0);
    expect(liveRankWorkers()).toBe(0);
    for (const r of reports) {
      expect(r.count).toBe(n + 2);
      expect(r.json.slice(0, n)).toEqual(Array.from({ length: n }, (_, i) => JSON.stringify({ step: i, tokens: [i, i + 1, i + 2] })));
      expect(r.arrays).toEqual([{ length: 700_000, sum: 70_000 * 45 }]);
      expect(r.fromRank0).toEqual({ relayed: 'by rank 0', big: `${3 << 20}` });
    }
    expect(hellos.sort((a, b) => a[0] - b[0])).toEqual([0, 1, 2, 3].map((r) => [r, { hello: r }]));
  });
});
