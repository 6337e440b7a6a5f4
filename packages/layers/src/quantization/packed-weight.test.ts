/** A packed weight filled row range by row range (fused shards) equals one filled whole; its bytes; bad shapes. */
import { describe, expect, it } from 'vitest';
import { createPackedWeight } from './packed-weight.js';

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

  it('refuses a block format whose input dim is not whole blocks', () => {
    expect(() => createPackedWeight('q4_0', 4, 40)).toThrow(/input dim 40 is not a multiple of 32/);
  });
});
