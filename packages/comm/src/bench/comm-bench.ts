/**
 * allReduce over shared memory between worker threads: latency, algorithm and
 * bus bandwidth (NCCL's conventions) per size and world size, next to this
 * machine's plain memory-copy bandwidth measured in the same run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { spawnRanks } from '../launcher.js';
import { runTcpAllReduceBench, type TcpBenchRow } from './tcp-bench.js';

export interface CommBenchOptions {
  /** Bytes per rank; default 4 KiB … 64 MiB in powers of 4. */
  sizes?: number[];
  worldSizes?: number[];
  /** Iterations per size; default scales with size (≥ 5, ≤ 1000). */
  iters?: number;
  /** JSON output path; default bench-results/comm-bench.json. */
  out?: string;
  /** Also measure the TCP transport (default true). */
  tcp?: boolean;
  /** Print the table (default true). */
  print?: boolean;
  /** Passed to spawnRanks (spin before sleeping in waits). */
  spinUs?: number;
}

export interface CommBenchRow {
  bytes: number;
  worldSize: number;
  iters: number;
  latencyUs: number;
  algBwGBs: number;
  busBwGBs: number;
  /** busBw / memcpy bandwidth. */
  ofMemcpy: number;
}

export interface CommBenchResult {
  memcpyGBs: number;
  rows: CommBenchRow[];
  tcp: TcpBenchRow[];
  machine: { cpus: number; node: string; spinUs: number | null };
}

const DEFAULT_SIZES = [4, 16, 64, 256, 1024, 4096, 16384, 65536].map((k) => k * 1024);

export async function runCommBench(opts: CommBenchOptions = {}): Promise<CommBenchResult> {
  const sizes = opts.sizes ?? DEFAULT_SIZES;
  const worldSizes = opts.worldSizes ?? [2, 4, 8];
  const iters = sizes.map((s) => opts.iters ?? Math.min(1000, Math.max(5, Math.floor((256 << 20) / s / 4))));
  const memcpyGBs = memcpyBandwidth(64 << 20);
  const rows: CommBenchRow[] = [];
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSource ? './comm-bench-entry.ts' : './comm-bench-entry.js', import.meta.url);
  for (const ws of worldSizes) {
    const pool = await spawnRanks({ parallel: { tp: ws }, entry, backend: 'cpu', args: { sizes, iters }, timeoutMs: 600_000, spinUs: opts.spinUs });
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
  // The TCP transport in the same run (up to 16 MiB: loopback sockets, all ranks in this process).
  const tcp = opts.tcp === false ? [] : await runTcpAllReduceBench(worldSizes.filter((w) => w <= 4), sizes.filter((b) => b <= 16 << 20), (b) => Math.max(3, Math.min(200, Math.floor((32 << 20) / b))));
  const { availableParallelism } = await import('node:os');
  const result: CommBenchResult = { memcpyGBs, rows, tcp, machine: { cpus: availableParallelism(), node: process.version, spinUs: opts.spinUs ?? null } };
  if (opts.print !== false) console.log(formatTable(result));
  const out = opts.out ?? 'bench-results/comm-bench.json';
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2));
  return result;
}

/** Float32Array.set of `bytes`, best of several runs, in GB/s of bytes copied. */
function memcpyBandwidth(bytes: number): number {
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

function human(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes / 1024} KiB`;
}

export function formatTable(r: CommBenchResult): string {
  const lines = [
    `allReduce (float32, shared memory, worker threads) — ${r.machine.cpus} CPUs, Node ${r.machine.node}`,
    `memcpy (Float32Array.set, 64 MiB): ${r.memcpyGBs.toFixed(2)} GB/s`,
    '',
    '| size | ws | latency µs | algbw GB/s | busbw GB/s | busbw / memcpy |',
    '| ---: | -: | ---: | ---: | ---: | ---: |',
  ];
  for (const x of r.rows) {
    lines.push(
      `| ${human(x.bytes)} | ${x.worldSize} | ${x.latencyUs.toFixed(1)} | ${x.algBwGBs.toFixed(3)} | ${x.busBwGBs.toFixed(3)} | ${x.ofMemcpy.toFixed(3)} |`,
    );
  }
  if (r.tcp.length) {
    lines.push('', 'allReduce over TCP (loopback, authenticated sockets) vs shared memory, same run', '', '| size | ws | tcp latency µs | tcp busbw GB/s | shm latency µs | tcp ÷ shm time |', '| ---: | -: | ---: | ---: | ---: | ---: |');
    for (const t of r.tcp) {
      const shm = r.rows.find((x) => x.bytes === t.bytes && x.worldSize === t.ws);
      lines.push(`| ${human(t.bytes)} | ${t.ws} | ${t.latencyUs.toFixed(1)} | ${t.busbwGBs.toFixed(3)} | ${shm ? shm.latencyUs.toFixed(1) : '—'} | ${shm ? (t.latencyUs / shm.latencyUs).toFixed(1) : '—'} |`);
    }
  }
  return lines.join('\n');
}
