import { describe, expect, it } from 'vitest';
import { availableIsas, cpuKernels } from './kernels.js';
import { loadNative } from './native.js';
import { planKernels, type HostMatrix } from './plan-ops.js';
import { q4_0Rows, repackQ4_0 } from './q4-tile.js';
import { dequantizeQ4_0Transposed, quantizeQ4_0, quantizeRowsQ4_0 } from './quantize.js';
import type { Q4_0Weight } from './formats.js';

// The tile16 layout is the same bytes permuted within whole tiles of 16 rows: every path (native tile kernels,
// ISAs without them, the portable twin) must give the rows layout's bits, at every activation row count (m = 1 and
// 3: the untransposed decode tile; 2 and ≥ 4: the transposing tile), for odd block counts (the last step narrower
// than 64 bytes / 8 scales, the blocks past the last whole 4) and row counts that leave a partial last tile.
let seed = 4242;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const random = (len: number, scale = 1) => Float32Array.from({ length: len }, () => rnd() * scale);
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const tiled = (w: Q4_0Weight, n: number, k: number): Q4_0Weight => {
  const t: Q4_0Weight = { qs: w.qs.slice(), d: w.d.slice() };
  t.layout = repackQ4_0(t, n, k, 'tile16');
  return t;
};

// [k, n]: the determinism suite's 544 × 1003 (17 blocks, n % 16 = 11), the edge tiles' (blocks 1, 3, 4, 7, 11, 12,
// 13; n < 16, = 16, odd), TinyLlama's k (64 blocks) and gate_up's down k (176), and odd rows past whole tiles
const SHAPES = [[544, 1003], [32, 17], [96, 16], [128, 17], [224, 33], [352, 20], [384, 16], [416, 35], [2048, 48], [5632, 33], [256, 5], [1056, 47]] as const;
const MS = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33];

describe('Q4_0 tile16 layout', () => {
  const isas = availableIsas();
  const weights = SHAPES.map(([k, n]) => {
    const rows = quantizeQ4_0(random(n * k, 0.05));
    return { k, n, rows, tiles: tiled(rows, n, k) };
  });

  it('is the same bytes permuted within whole tiles; back to rows gives the weight again', () => {
    for (const { k, n, rows, tiles } of weights) {
      const whole = Math.floor(n / 16) * 16;
      expect([...tiles.qs].sort().join(), `k=${k} n=${n}`).toBe([...rows.qs].sort().join());
      // the last n % 16 rows stay as rows
      expect(tiles.qs.subarray((whole * k) / 2)).toEqual(rows.qs.subarray((whole * k) / 2));
      expect(tiles.d.subarray((whole * k) / 32)).toEqual(rows.d.subarray((whole * k) / 32));
      if (whole > 0 && k >= 256) expect(tiles.qs.subarray(0, (whole * k) / 2)).not.toEqual(rows.qs.subarray(0, (whole * k) / 2));
      const back = q4_0Rows(tiles, n, k);
      expect(back.layout).toBe('rows');
      expect(back.qs).toEqual(rows.qs);
      expect(back.d).toEqual(rows.d);
      expect(q4_0Rows(rows, n, k)).toBe(rows);
    }
  });

  it('row 0 of a tile leads each 64-byte step, its 8 scales each scale step (the layout, spelled out once more)', () => {
    const { k, n, rows, tiles } = weights.find((w) => w.k === 2048)!;
    const wrow = k / 2;
    // step s of row l at s·1024 + l·64 within the tile; scales: step s of row l at s·128 + l·8
    for (const [l, s] of [[0, 0], [5, 0], [15, 3], [9, 15]] as const) {
      expect(tiles.qs.subarray(16 * wrow + s * 1024 + l * 64, 16 * wrow + s * 1024 + l * 64 + 64)).toEqual(rows.qs.subarray((16 + l) * wrow + s * 64, (16 + l) * wrow + s * 64 + 64));
      const sd = s % 8; // 64 blocks: 8 scale steps
      expect(tiles.d.subarray(sd * 128 + l * 8, sd * 128 + l * 8 + 8)).toEqual(rows.d.subarray(l * 64 + sd * 8, l * 64 + sd * 8 + 8));
    }
    expect(n).toBe(48);
  });

  for (const isa of isas)
    it(`${isa}: tile16 gives the rows layout's bits at m = ${MS.join(', ')}, 1 and 2 threads`, () => {
      for (const { k, n, rows, tiles } of weights) {
        const big = k * n > 500_000;
        for (const m of isa === 'portable' ? [1, 3, 4] : MS) {
          if (big && m > 9 && isa !== 'avx512') continue; // (the scalar paths are slow; avx512 runs them all)
          const x = random(m * k, 2);
          for (const threads of isa === 'portable' ? [1] : [1, 2]) {
            const kern = cpuKernels({ isa, threads });
            const want = new Float32Array(m * n), got = new Float32Array(m * n);
            kern.gemmQ4_0(x, m, k, rows, n, want);
            kern.gemmQ4_0(x, m, k, tiles, n, got);
            expect(want.some((v) => v !== 0)).toBe(true);
            expect(bits(got), `${isa} k=${k} n=${n} m=${m} threads=${threads}`).toEqual(bits(want));
          }
        }
      }
    });

  for (const isa of isas)
    it(`${isa}: the plan linear on a tile16 weight gives the rows bits (strided views, accumulate, bias)`, () => {
      const plan = planKernels({ isa, threads: 2 });
      for (const { k, n, rows, tiles } of weights.filter((w) => w.k * w.n < 500_000)) {
        for (const m of [1, 2, 3, 5]) {
          const x = random(m * (k + 3), 2), bias = random(n), base = random(m * (n + 2));
          const run = (w: HostMatrix) => {
            const out = base.slice();
            plan.linear({ data: x, offset: 3, stride: k + 3 }, m, w, { data: out, offset: 2, stride: n + 2 }, true, bias);
            return out;
          };
          const want = run({ format: 'q4_0', n, k, ...rows }), got = run({ format: 'q4_0', n, k, ...tiles });
          expect(bits(got), `${isa} linear k=${k} n=${n} m=${m}`).toEqual(bits(want));
        }
      }
    });

  it('the kernels ask the addon whether it has tile kernels for their ISA', () => {
    const { addon } = loadNative();
    const native = addon?.info().q4_0Tile16 ?? [];
    for (const isa of isas) {
      const want = addon?.gemmQ4_0Tile16 && native.includes(isa) ? 'tile16' : 'rows';
      expect(cpuKernels({ isa }).info.q4_0Layout, isa).toBe(want);
    }
    if (isas.includes('avx512')) expect(native).toContain('avx512');
    expect(cpuKernels({ isa: 'portable' }).info.q4_0Layout).toBe('rows');
  });

  it('dequantizes either layout alike; storing rows into a tiled weight is an error naming the layout', () => {
    const { k, n, rows, tiles } = weights[0]!;
    expect(bits(dequantizeQ4_0Transposed(tiles, n, k))).toEqual(bits(dequantizeQ4_0Transposed(rows, n, k)));
    expect(() => quantizeRowsQ4_0(random(k), 1, k, tiles, 0)).toThrow(/layout 'tile16'/);
    expect(() => repackQ4_0({ ...rows, layout: 'cols' as never }, n, k, 'tile16')).toThrow(/'rows' or 'tile16'/);
  });
});
