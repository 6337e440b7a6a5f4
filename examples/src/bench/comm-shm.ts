/**
 * bench:comm, shared memory: allReduce between worker threads, latency and bus
 * bandwidth (NCCL's conventions) per size and world size, next to this
 * machine's plain memory-copy bandwidth measured in the same run.
 */
import { spawnRanks } from '@weft/comm';
import type { CommRankArgs } from './comm-rank.js';

export interface ShmRow {
  bytes: number;
  worldSize: number;
  iters: number;
  latencyUs: number;
  algBwGBs: number;
  busBwGBs: number;
  /** busBw / memcpy bandwidth. */
  ofMemcpy: number;
}

/** `entry`: the URL of comm-rank (worker threads load it by URL). */
export async function shmAllReduce(entry: URL, sizes: number[], worldSizes: number[], iters: number[], memcpyGBs: number, spinUs?: number): Promise<ShmRow[]> {
  const rows: ShmRow[] = [];
  for (const ws of worldSizes) {
    const args: CommRankArgs = { sizes, iters };
    const pool = await spawnRanks({ parallel: { tp: ws }, entry, backend: 'cpu', args, timeoutMs: 600_000, spinUs });
    try {
      const perRank = (await pool.results()) as number[][];
      sizes.forEach((bytes, i) => {
        const sec = Math.max(...perRank.map((r) => r[i]!));
        const algBwGBs = bytes / sec / 1e9;
        const busBwGBs = (algBwGBs * 2 * (ws - 1)) / ws;
        rows.push({ bytes, worldSize: ws, iters: iters[i]!, latencyUs: sec * 1e6, algBwGBs, busBwGBs, ofMemcpy: busBwGBs / memcpyGBs });
      });
    } finally {
      await pool.terminate();
    }
  }
  return rows;
}

/** Float32Array.set of `bytes`, best of several runs, in GB/s of bytes copied. */
export function memcpyBandwidth(bytes: number): number {
  const src = new Float32Array(bytes / 4).fill(1);
  const dst = new Float32Array(bytes / 4);
  let best = Infinity;
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    dst.set(src);
    best = Math.min(best, performance.now() - t0);
  }
  return bytes / (best / 1000) / 1e9;
}
