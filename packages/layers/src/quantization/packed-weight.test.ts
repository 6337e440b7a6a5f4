/** A packed weight filled row range by row range (fused shards) equals one filled whole; its bytes; bad shapes. */
import { cpuKernels } from '@weft/cpu-kernels';
import { describe, expect, it } from 'vitest';
import { useCpuQuantKernels } from './cpu-quant-kernels.js';
import { GgmlLinearMethod } from './linear-method.js';
import { createPackedWeight, type Q4_0Weight } from './packed-weight.js';

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2);
}

describe('packed weights', () => {
  it.each(['q8_0', 'q4_0', 'bf16'] as const)('%s: filled in row ranges (fused shards) equals filled whole', (format) => {
    const n = 12;
    const k = 64;
    const x = random(n * k, 3);
    const whole = createPackedWeight(format, n, k);
    whole.storeRows(x, 0, n);
    const parts = createPackedWeight(format, n, k);
    parts.storeRows(x.subarray(8 * k), 8, 4);
    parts.storeRows(x.subarray(0, 8 * k), 0, 8);
    expect(Array.from(parts.dequantizeTransposed())).toEqual(Array.from(whole.dequantizeTransposed()));
    expect(whole.bytes).toBe(format === 'bf16' ? n * k * 2 : ((n * k) / 32) * (format === 'q8_0' ? 34 : 18));
    // Dequantized within a quantum of the source (transposed to [k, n]).
    const back = whole.dequantizeTransposed();
    let worst = 0;
    for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) worst = Math.max(worst, Math.abs(back[c * n + r]! - x[r * k + c]!));
    expect(worst).toBeLessThan(format === 'q4_0' ? 0.02 : 0.002);
  });

  it('q4_0: repacked to tile16 once its rows are in, it reads as before and takes no more rows', () => {
    const n = 37, k = 544; // two whole tiles and 5 rows; 17 blocks
    const x = random(n * k, 5);
    const w = createPackedWeight('q4_0', n, k) as Q4_0Weight;
    w.storeRows(x.subarray(16 * k), 16, n - 16);
    w.storeRows(x.subarray(0, 16 * k), 0, 16);
    const rows = w.qs.slice(), values = w.dequantizeTransposed();
    expect(w.layout).toBe('rows');
    w.repack('tile16');
    expect(w.layout).toBe('tile16');
    expect(w.qs).not.toEqual(rows);
    expect(Array.from(w.dequantizeTransposed())).toEqual(Array.from(values));
    expect(() => w.storeRows(x, 0, 1)).toThrow(/layout 'tile16'/);
    w.repack('rows');
    expect(w.qs).toEqual(rows);
  });

  it("q4_0's processWeightsAfterLoading takes the layout of the registered CPU kernels (rows without them); q8_0 stays in rows", () => {
    const method = new GgmlLinearMethod('q4_0');
    const load = () => {
      const packed = method.createWeights(32, 256) as Q4_0Weight;
      packed.storeRows(random(32 * 256, 7), 0, 32);
      method.processWeightsAfterLoading({ name: 'w', shape: [32, 256], tensor: null as never, packed });
      return packed.layout;
    };
    expect(load()).toBe('rows');
    const info = useCpuQuantKernels(true)!;
    try {
      expect(info.q4_0Layout).toBe(cpuKernels().info.q4_0Layout);
      expect(load()).toBe(info.q4_0Layout);
      // this source's addon has tile kernels for AVX-512
      if (info.isa === 'avx512') expect(load()).toBe('tile16');
      const q8 = new GgmlLinearMethod('q8_0'), packed = q8.createWeights(32, 256);
      packed.storeRows(random(32 * 256, 7), 0, 32);
      q8.processWeightsAfterLoading({ name: 'w', shape: [32, 256], tensor: null as never, packed });
      expect('layout' in packed).toBe(false);
    } finally {
      useCpuQuantKernels(false);
    }
    expect(load()).toBe('rows');
  });

  it('refuses a block format whose input dim is not whole blocks', () => {
    expect(() => createPackedWeight('q4_0', 4, 40)).toThrow(/input dim 40 is not a multiple of 32/);
  });
});
