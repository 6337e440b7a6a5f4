import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { availableIsas, cpuKernels } from './kernels.js';
import { ADDON_FILE, loadNative } from './native.js';
import { quantizeQ8_0 } from './quantize.js';

// Worker threads (as weft's ranks) calling the addon at once, each asking for 2 threads: one gets the pool,
// the other runs alone; both must get the right numbers, many times over.
const WORKER = `
const { parentPort, workerData: d } = require('node:worker_threads');
const addon = require(d.addon);
let worst = 0;
for (let it = 0; it < d.iters; it++) {
  const out = new Float32Array(d.m * d.n);
  addon.gemmQ8_0(0, 2, d.x, d.m, d.k, d.qs, d.d, d.n, out);
  for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - d.ref[i]));
}
parentPort.postMessage(worst);
`;

describe('the addon from several threads at once', () => {
  const native = loadNative();
  it.skipIf(!native.addon)('gives every caller the right result (pool taken or not)', async () => {
    const isa = availableIsas()[0]!;
    const m = 5, k = 512, n = 301;
    let s = 9;
    const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    const x = Float32Array.from({ length: m * k }, rnd);
    const w = quantizeQ8_0(Float32Array.from({ length: n * k }, rnd));
    const ref = new Float32Array(m * n);
    cpuKernels({ isa, threads: 1 }).gemmQ8_0(x, m, k, w, n, ref);
    const addon = new URL(`../${ADDON_FILE}`, import.meta.url).pathname;
    const results = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<number>((resolve, reject) => {
            const wk = new Worker(WORKER, { eval: true, workerData: { addon, x, m, k, qs: w.qs, d: w.d, n, ref, iters: 200 } });
            wk.once('message', resolve);
            wk.once('error', reject);
          }),
      ),
    );
    for (const worst of results) expect(worst).toBeLessThan(1e-4);
  });

  // The pool splits a call's rows into one contiguous range a thread and lets a thread done with its own take chunks
  // from the back of the others': every row must be computed, whatever the split, the thread count or who steals.
  it.skipIf(!native.addon)('computes every row once per call, for any row count and thread count (ranges and stealing)', () => {
    const isa = availableIsas()[0]!;
    const k = 64;
    let s = 5;
    const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    for (const n of [1, 15, 16, 17, 40, 301, 1000]) {
      const x = Float32Array.from({ length: k }, rnd);
      const w = quantizeQ8_0(Float32Array.from({ length: n * k }, rnd));
      const ref = new Float32Array(n);
      cpuKernels({ isa, threads: 1 }).gemmQ8_0(x, 1, k, w, n, ref);
      for (const threads of [2, 3, 5])
        for (let it = 0; it < 50; it++) {
          const out = new Float32Array(n).fill(NaN);
          cpuKernels({ isa, threads }).gemmQ8_0(x, 1, k, w, n, out);
          expect(Array.from(out), `n ${n}, ${threads} threads`).toEqual(Array.from(ref));
        }
    }
  });
});
