/**
 * The machine's memory read bandwidth, measured in the same run as what it
 * bounds: `threads` worker threads each sum their own 256 MiB buffer at once
 * (4 independent accumulators so the adds are not the bottleneck).
 */
import { Worker } from 'node:worker_threads';

const KERNEL = `
const { parentPort, workerData } = require('node:worker_threads');
const a = new Float64Array(workerData.bytes / 8).fill(1);
parentPort.once('message', () => {
  let best = Infinity, sink = 0;
  for (let r = 0; r < workerData.reps; r++) {
    const t0 = performance.now();
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let i = 0; i < a.length; i += 4) { s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3]; }
    best = Math.min(best, performance.now() - t0);
    sink += s0 + s1 + s2 + s3;
  }
  parentPort.postMessage({ ms: best, sink });
});
parentPort.postMessage('ready');
`;

/** Aggregate GB/s of `threads` concurrent readers. */
export async function measureReadBandwidth(threads = 1, bytes = 256 * 1024 * 1024, reps = 5): Promise<number> {
  const workers = Array.from({ length: threads }, () => new Worker(KERNEL, { eval: true, workerData: { bytes, reps } }));
  try {
    await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
    const results = await Promise.all(
      workers.map((w) => new Promise<{ ms: number }>((r) => { w.once('message', r); w.postMessage('go'); })),
    );
    return results.reduce((a, { ms }) => a + bytes / (ms / 1000) / 1e9, 0);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
