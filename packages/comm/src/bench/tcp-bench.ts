/**
 * The TCP transport's allReduce in the same run as the shared-memory one:
 * `ws` ranks joined through a real rendezvous on loopback, all in this process
 * (one event loop drives every rank, so latencies include their CPU sharing).
 */
import { TcpCommunicator } from '../tcp/tcp-communicator.js';
import { worldOf } from '../tcp/test-world.js';

export interface TcpBenchRow {
  transport: 'tcp';
  ws: number;
  bytes: number;
  latencyUs: number;
  algbwGBs: number;
  busbwGBs: number;
}

export async function runTcpAllReduceBench(worldSizes: number[], sizes: number[], itersFor: (bytes: number) => number): Promise<TcpBenchRow[]> {
  const rows: TcpBenchRow[] = [];
  for (const ws of worldSizes) {
    const ts = await worldOf(ws);
    try {
      const comms = ts.map((t) => new TcpCommunicator(t, 'bench:0', ts.map((_, r) => r), 900));
      for (const bytes of sizes) {
        const n = Math.max(1, Math.floor(bytes / 4));
        const data = comms.map((_, r) => new Float32Array(n).fill(r + 1));
        const run = () => Promise.all(comms.map((c, r) => c.allReduce(data[r]!)));
        await run();
        const iters = itersFor(bytes);
        const t0 = performance.now();
        for (let k = 0; k < iters; k++) await run();
        const s = (performance.now() - t0) / 1000 / iters;
        const algbw = bytes / s / 1e9;
        rows.push({ transport: 'tcp', ws, bytes, latencyUs: s * 1e6, algbwGBs: algbw, busbwGBs: (algbw * 2 * (ws - 1)) / ws });
      }
    } finally {
      await Promise.all(ts.map((t) => t.close()));
    }
  }
  return rows;
}
