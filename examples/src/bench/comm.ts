/**
 * npm run bench:comm [-- OUT.json] [--no-decode] [--model DIR] [--backend NAME]
 * allReduce latency and bandwidth over shared memory (worker threads) against
 * plain memory copy, over TCP on loopback (MACed frames and not), and a tp 2
 * decode with ranks as threads against ranks as processes over TCP.
 * Prints the tables and writes them as JSON (default bench-results/comm.json).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeOverTcp } from './comm-decode.js';
import { memcpyBandwidth, shmAllReduce } from './comm-shm.js';
import { formatTable, type CommBenchResult } from './comm-table.js';
import { tcpAllReduce } from './comm-tcp.js';

const { values: v, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'no-decode': { type: 'boolean' },
    model: { type: 'string', default: fileURLToPath(new URL('../../../fixtures/llama-tiny', import.meta.url)) },
    backend: { type: 'string' },
    'world-sizes': { type: 'string', default: '2,4,8' },
  },
});
const out = positionals[0] ?? 'bench-results/comm.json';
const sizes = [4, 16, 64, 256, 1024, 4096, 16384, 65536].map((k) => k * 1024);
const worldSizes = v['world-sizes'].split(',').map(Number);
const iters = sizes.map((s) => Math.min(1000, Math.max(5, Math.floor((256 << 20) / s / 4))));
// Worker threads load the rank entry by URL: beside this file, .ts from source, .js built.
const entry = new URL(`./comm-rank${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

const memcpyGBs = memcpyBandwidth(64 << 20);
const rows = await shmAllReduce(entry, sizes, worldSizes, iters, memcpyGBs);
// Up to 16 MiB and 4 ranks: loopback sockets, every rank in this process.
const tcp = await tcpAllReduce(
  worldSizes.filter((w) => w <= 4),
  sizes.filter((b) => b <= 16 << 20),
  (b) => Math.max(3, Math.min(200, Math.floor((32 << 20) / b))),
);
const decode = v['no-decode'] ? null : await decodeOverTcp({ bin: fileURLToPath(new URL('../../bin/weft.js', import.meta.url)), model: v.model, backend: v.backend });
const result: CommBenchResult = { memcpyGBs, rows, tcp, decode, machine: { cpus: availableParallelism(), node: process.version, spinUs: null, loadavg: loadavg() } };
console.log(formatTable(result));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2));
console.log(`\nwritten to ${out}`);
