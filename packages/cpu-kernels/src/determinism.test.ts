import { describe, expect, it } from 'vitest';
import { toBf16 } from './fp16.js';
import { availableIsas, cpuKernels } from './kernels.js';
import { quantizeQ4_0, quantizeQ8_0 } from './quantize.js';

// The native paths' results are bitwise the same whatever the thread count (rows go to threads in chunks taken
// in turn), and a row's bits do not depend on the other rows of its batch: alone (a batch small enough to run the
// same kernel as one row) or moved within the batch (avx512 runs other kernels from 8 rows for Q8_0/Q4_0 — the
// 16-row transposed one — and from 4 rows for bf16). The transposed kernel sums each row's blocks as the scalar
// path does: the same bits as scalar.
let seed = 777;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const random = (len: number, scale = 1) => Float32Array.from({ length: len }, () => rnd() * scale);
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const FORMATS = ['q8_0', 'q4_0', 'bf16'] as const;
/** Batches smaller than this run the kernel a single row does (avx512; the other paths have one kernel). */
const ONE_KERNEL_BELOW = { q8_0: 8, q4_0: 8, bf16: 4 } as const;

describe('bitwise determinism of the native kernels', () => {
  const native = availableIsas().filter((i) => i !== 'portable');
  const k = 544, n = 1003; // an odd number of blocks; n neither a multiple of 4 nor of 16
  const x = random(11 * k, 2);
  const wf = random(n * k, 0.05);
  const weights = { q8_0: quantizeQ8_0(wf), q4_0: quantizeQ4_0(wf), bf16: toBf16(wf) };
  const run = (isa: string, threads: number, fmt: (typeof FORMATS)[number], xs: Float32Array, rows: number) => {
    const kern = cpuKernels({ isa, threads });
    const out = new Float32Array(rows * n);
    if (fmt === 'q8_0') kern.gemmQ8_0(xs, rows, k, weights.q8_0, n, out);
    else if (fmt === 'q4_0') kern.gemmQ4_0(xs, rows, k, weights.q4_0, n, out);
    else kern.gemmBf16(xs, rows, k, weights.bf16, n, out);
    return out;
  };
  const rowsOf = (a: Float32Array, i: number, j: number) => a.subarray(i * n, j * n);
  for (const isa of native)
    for (const fmt of FORMATS)
      for (const m of [3, 6, 11])
        it(`${isa} ${fmt} m=${m}: 1, 2 and 3 threads give the same bits, and a row gives its bits anywhere in the batch`, () => {
          const xs = x.subarray(0, m * k);
          const one = run(isa, 1, fmt, xs, m);
          expect(one.some((v) => v !== 0)).toBe(true);
          for (const threads of [2, 3]) for (let rep = 0; rep < 3; rep++) expect(bits(run(isa, threads, fmt, xs, m))).toEqual(bits(one));
          if (m < ONE_KERNEL_BELOW[fmt] || isa !== 'avx512') {
            for (let i = 0; i < m; i++) expect(bits(run(isa, 2, fmt, xs.subarray(i * k, (i + 1) * k), 1))).toEqual(bits(rowsOf(one, i, i + 1)));
          } else {
            // the batch rotated by 2 rows: every row's output rotates with it
            const rot = new Float32Array(m * k);
            rot.set(xs.subarray(2 * k), 0);
            rot.set(xs.subarray(0, 2 * k), (m - 2) * k);
            const got = run(isa, 2, fmt, rot, m);
            expect(bits(rowsOf(got, 0, m - 2))).toEqual(bits(rowsOf(one, 2, m)));
            expect(bits(rowsOf(got, m - 2, m))).toEqual(bits(rowsOf(one, 0, 2)));
          }
        });

  it.skipIf(!native.includes('avx512') || !native.includes('scalar'))('avx512 batches of 8 or more rows give the scalar path’s bits (Q8_0, Q4_0)', () => {
    // and with activations on exact halves of their quantum (127 sets d = 1): the rounding to even must agree too
    const halves = Float32Array.from({ length: 8 * k }, (_, i) => (i % 32 === 0 ? 127 : ((i * 7) % 255) / 2 - 63.5));
    for (const fmt of ['q8_0', 'q4_0'] as const)
      for (const [xs, m] of [[x.subarray(0, 11 * k), 11], [halves, 8]] as const)
        expect(bits(run('avx512', 2, fmt, xs, m))).toEqual(bits(run('scalar', 1, fmt, xs, m)));
    // edges of the 16-row tiles: one block a row (its scales not gathered), fewer than 16 rows, exactly 16
    for (const [m, kk, nn] of [[9, 32, 17], [8, 96, 16], [8, 32, 5]] as const) {
      const xs = random(m * kk, 2), ws = random(nn * kk, 0.05), q8 = quantizeQ8_0(ws), q4 = quantizeQ4_0(ws);
      for (const fmt of ['q8_0', 'q4_0'] as const) {
        const one = (isa: string) => {
          const kern = cpuKernels({ isa, threads: 2 }), out = new Float32Array(m * nn);
          if (fmt === 'q8_0') kern.gemmQ8_0(xs, m, kk, q8, nn, out);
          else kern.gemmQ4_0(xs, m, kk, q4, nn, out);
          return out;
        };
        expect(bits(one('avx512')), `${fmt} m=${m} k=${kk} n=${nn}`).toEqual(bits(one('scalar')));
      }
    }
  });
});
