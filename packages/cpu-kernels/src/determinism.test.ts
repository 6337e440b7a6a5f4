import { describe, expect, it } from 'vitest';
import { toBf16 } from './fp16.js';
import { availableIsas, cpuKernels } from './kernels.js';
import { quantizeQ4_0, quantizeQ8_0 } from './quantize.js';

// Batch invariance, bitwise: every path (each native ISA at 1, 2 and 3 threads, and the portable JS twin) sums each
// output in one order whatever its batch — a row's output is the same bits alone or at any place in a batch of any
// size (the batched kernels' tiles, the remainder tiles and the thread split change nothing), and every path gives
// the same bits as the others. So an engine's alone / batched / chunked paths give equal logits.
let seed = 777;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const random = (len: number, scale = 1) => Float32Array.from({ length: len }, () => rnd() * scale);
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const FORMATS = ['q8_0', 'q4_0', 'bf16'] as const;
type Format = (typeof FORMATS)[number];
const MAX_ROWS = 33;

describe('bitwise batch invariance of the kernels', () => {
  const isas = availableIsas();
  const k = 544, n = 1003; // an odd number of blocks; n neither a multiple of 8 nor of 16
  const x = random(MAX_ROWS * k, 2);
  const wf = random(n * k, 0.05);
  const weights = { q8_0: quantizeQ8_0(wf), q4_0: quantizeQ4_0(wf), bf16: toBf16(wf) };
  const run = (isa: string, threads: number, fmt: Format, xs: Float32Array, rows: number) => {
    const kern = cpuKernels({ isa, threads });
    const out = new Float32Array(rows * n);
    if (fmt === 'q8_0') kern.gemmQ8_0(xs, rows, k, weights.q8_0, n, out);
    else if (fmt === 'q4_0') kern.gemmQ4_0(xs, rows, k, weights.q4_0, n, out);
    else kern.gemmBf16(xs, rows, k, weights.bf16, n, out);
    return out;
  };
  const xRow = (i: number) => x.subarray(i * k, (i + 1) * k);
  const alone = new Map<string, Float32Array[]>();
  const aloneOf = (isa: string, fmt: Format) => {
    const key = `${isa} ${fmt}`;
    if (!alone.has(key)) alone.set(key, Array.from({ length: MAX_ROWS }, (_, i) => run(isa, 1, fmt, xRow(i), 1)));
    return alone.get(key)!;
  };

  for (const isa of isas)
    for (const fmt of FORMATS)
      it(`${isa} ${fmt}: a row gives its alone bits in batches of 1..${MAX_ROWS} rows, at any place, on 1-3 threads`, () => {
        const one = aloneOf(isa, fmt);
        expect(one[0]!.some((v) => v !== 0)).toBe(true);
        // the JS twin's loops are the same whatever the batch: a few sizes keep its run short
        const sizes = isa === 'portable' ? [1, 2, 3, 7, 8, 9, 17, MAX_ROWS] : Array.from({ length: MAX_ROWS }, (_, i) => i + 1);
        for (const m of sizes) {
          // rows start..start+m-1 (mod MAX_ROWS): each row lands at other places in other batch sizes
          const start = (m * 7) % MAX_ROWS;
          const xs = new Float32Array(m * k);
          for (let j = 0; j < m; j++) xs.set(xRow((start + j) % MAX_ROWS), j * k);
          const threads = isa === 'portable' ? 1 : 1 + (m % 3);
          const got = run(isa, threads, fmt, xs, m);
          for (let j = 0; j < m; j++)
            expect(bits(got.subarray(j * n, (j + 1) * n)), `${isa} ${fmt} m=${m} row ${j} (${threads} threads)`).toEqual(bits(one[(start + j) % MAX_ROWS]!));
        }
      });

  for (const fmt of FORMATS)
    it.skipIf(isas.length < 2)(`${fmt}: every path gives the same bits (${isas.join(', ')})`, () => {
      const ref = aloneOf(isas[isas.length - 1]!, fmt);
      for (const isa of isas.slice(0, -1)) {
        const got = aloneOf(isa, fmt);
        for (let i = 0; i < MAX_ROWS; i++) expect(bits(got[i]!), `${isa} vs ${isas[isas.length - 1]} row ${i}`).toEqual(bits(ref[i]!));
      }
    });

  it('Q8_0 / Q4_0 with activations on exact halves of their quantum (127 sets d = 1): every path rounds them alike', () => {
    const halves = Float32Array.from({ length: 8 * k }, (_, i) => (i % 32 === 0 ? 127 : ((i * 7) % 255) / 2 - 63.5));
    for (const fmt of ['q8_0', 'q4_0'] as const) {
      const ref = run('portable', 1, fmt, halves, 8);
      for (const isa of isas) expect(bits(run(isa, 2, fmt, halves, 8)), `${isa} ${fmt}`).toEqual(bits(ref));
    }
  });

  it('edges of the tiles: one block a row, fewer rows than a tile, exactly one tile; the 4- and 8-block steps of the Q4_0 decode tile', () => {
    // the last 5: block counts 4, 7, 11, 12, 13 (the Q4_0 m = 1 / 3 tile takes blocks 8 then 4 at a time, then one)
    const q4s = [[1, 128, 17], [1, 224, 33], [3, 352, 20], [1, 384, 16], [3, 416, 35]] as const;
    for (const [m, kk, nn] of [[9, 32, 17], [8, 96, 16], [3, 32, 5], [1, 64, 8], [2, 32, 1], ...q4s] as const) {
      const xs = random(m * kk, 2), ws = random(nn * kk, 0.05), q8 = quantizeQ8_0(ws), q4 = quantizeQ4_0(ws), b16 = toBf16(ws);
      for (const fmt of FORMATS) {
        const one = (isa: string) => {
          const kern = cpuKernels({ isa, threads: 2 }), out = new Float32Array(m * nn);
          if (fmt === 'q8_0') kern.gemmQ8_0(xs, m, kk, q8, nn, out);
          else if (fmt === 'q4_0') kern.gemmQ4_0(xs, m, kk, q4, nn, out);
          else kern.gemmBf16(xs, m, kk, b16, nn, out);
          return out;
        };
        const ref = one('portable');
        for (const isa of isas) expect(bits(one(isa)), `${isa} ${fmt} m=${m} k=${kk} n=${nn}`).toEqual(bits(ref));
      }
    }
    // bf16 rows of any length: the k % 32 last elements after the lanes' tree
    for (const [m, kk, nn] of [[5, 45, 7], [1, 7, 3], [4, 70, 9]] as const) {
      const xs = random(m * kk, 2), b16 = toBf16(random(nn * kk, 0.05));
      const one = (isa: string) => {
        const out = new Float32Array(m * nn);
        cpuKernels({ isa, threads: 2 }).gemmBf16(xs, m, kk, b16, nn, out);
        return out;
      };
      const ref = one('portable');
      for (const isa of isas) expect(bits(one(isa)), `${isa} bf16 m=${m} k=${kk} n=${nn}`).toEqual(bits(ref));
    }
  });
});
