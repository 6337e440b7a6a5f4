/**
 * bench:comm, TCP: the transport's allReduce in the same run as the
 * shared-memory one, `ws` ranks joined through a real rendezvous on loopback,
 * all in this process (one event loop drives every rank, so latencies include
 * their CPU sharing), with every frame MACed (as jobs run) and without (what
 * the MAC costs).
 */
import { randomBytes } from 'node:crypto';
import { rendezvous, TcpCommunicator, type TcpTransport } from '@weft/comm';
import { freePort } from '../cli/transport.js';

export interface TcpRow {
  ws: number;
  bytes: number;
  /** Frames MACed (the default). */
  latencyUs: number;
  busbwGBs: number;
  /** The same allReduce with frameMac off. */
  noMacLatencyUs: number;
}

async function world(ws: number, frameMac: boolean): Promise<TcpTransport[]> {
  const token = randomBytes(16).toString('hex');
  const masterPort = await freePort();
  const base = { worldSize: ws, token, masterAddr: '127.0.0.1', masterPort, timeoutMs: 60_000, frameMac, log: () => {} };
  return Promise.all(Array.from({ length: ws }, (_, rank) => rendezvous({ ...base, rank })));
}

/** Mean seconds per allReduce of each size. */
async function timeAllReduce(ws: number, frameMac: boolean, sizes: number[], itersFor: (bytes: number) => number): Promise<number[]> {
  const ts = await world(ws, frameMac);
  try {
    const comms = ts.map((t) => new TcpCommunicator(t, 'bench:0', ts.map((_, r) => r), 900));
    const out: number[] = [];
    for (const bytes of sizes) {
      const n = Math.max(1, Math.floor(bytes / 4));
      const data = comms.map((_, r) => new Float32Array(n).fill(r + 1));
      const run = () => Promise.all(comms.map((c, r) => c.allReduce(data[r]!)));
      await run();
      const iters = itersFor(bytes);
      const t0 = performance.now();
      for (let k = 0; k < iters; k++) await run();
      out.push((performance.now() - t0) / 1000 / iters);
    }
    return out;
  } finally {
    await Promise.all(ts.map((t) => t.close()));
  }
}

export async function tcpAllReduce(worldSizes: number[], sizes: number[], itersFor: (bytes: number) => number): Promise<TcpRow[]> {
  const rows: TcpRow[] = [];
  for (const ws of worldSizes) {
    const mac = await timeAllReduce(ws, true, sizes, itersFor);
    const plain = await timeAllReduce(ws, false, sizes, itersFor);
    sizes.forEach((bytes, i) => {
      const algbw = bytes / mac[i]! / 1e9;
      rows.push({ ws, bytes, latencyUs: mac[i]! * 1e6, busbwGBs: (algbw * 2 * (ws - 1)) / ws, noMacLatencyUs: plain[i]! * 1e6 });
    });
  }
  return rows;
}
