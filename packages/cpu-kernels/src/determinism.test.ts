import { describe, expect, it } from 'vitest';
import { toBf16 } from './fp16.js';
import { availableIsas, cpuKernels } from './kernels.js';
import { quantizeQ4_0, quantizeQ8_0 } from './quantize.js';

// The native paths' results are bitwise the same whatever the thread count (rows go to threads in chunks taken
// in turn) and whatever else is in the batch (a row of x alone gives the bits it gives among m rows).
let seed = 777;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const random = (len: number, scale = 1) => Float32Array.from({ length: len }, () => rnd() * scale);
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('bitwise determinism of the native kernels', () => {
  const native = availableIsas().filter((i) => i !== 'portable');
  const m = 6, k = 544, n = 1003; // an odd number of blocks; n neither a multiple of 4 nor of 16
  const x = random(m * k, 2);
  const wf = random(n * k, 0.05);
  const weights = { q8_0: quantizeQ8_0(wf), q4_0: quantizeQ4_0(wf), bf16: toBf16(wf) };
  const run = (isa: string, threads: number, fmt: keyof typeof weights, xs: Float32Array, rows: number) => {
    const kern = cpuKernels({ isa, threads });
    const out = new Float32Array(rows * n);
    if (fmt === 'q8_0') kern.gemmQ8_0(xs, rows, k, weights.q8_0, n, out);
    else if (fmt === 'q4_0') kern.gemmQ4_0(xs, rows, k, weights.q4_0, n, out);
    else kern.gemmBf16(xs, rows, k, weights.bf16, n, out);
    return out;
  };
  for (const isa of native)
    for (const fmt of ['q8_0', 'q4_0', 'bf16'] as const)
      it(`${isa} ${fmt}: 1, 2 and 3 threads, and each row alone, give the same bits`, () => {
        const one = run(isa, 1, fmt, x, m);
        expect(one.some((v) => v !== 0)).toBe(true);
        for (const threads of [2, 3]) for (let rep = 0; rep < 5; rep++) expect(bits(run(isa, threads, fmt, x, m))).toEqual(bits(one));
        for (let i = 0; i < m; i++) expect(bits(run(isa, 2, fmt, x.subarray(i * k, (i + 1) * k), 1))).toEqual(bits(one.subarray(i * n, (i + 1) * n)));
      });
});
