import { describe, expect, it } from 'vitest';
import { dimToRankAxis, normalizeDim, rankAxisToDim, splitAt } from './tensor-layout.js';

describe('moving the rank axis', () => {
  it('rankAxisToDim turns [ws, outer, inner] into [outer, ws, inner]; dimToRankAxis undoes it', () => {
    const ws = 3;
    const outer = 4;
    for (const inner of [1, 5, 40]) {
      const src = Float32Array.from({ length: ws * outer * inner }, (_, i) => i);
      const moved = rankAxisToDim(src, ws, outer, inner);
      for (let r = 0; r < ws; r++) {
        for (let o = 0; o < outer; o++) {
          for (let k = 0; k < inner; k++) expect(moved[(o * ws + r) * inner + k]).toBe(src[(r * outer + o) * inner + k]);
        }
      }
      expect(Array.from(dimToRankAxis(moved, ws, outer, inner))).toEqual(Array.from(src));
    }
  });

  it('outer 1 needs no copy', () => {
    const a = Int32Array.of(1, 2, 3, 4);
    expect(rankAxisToDim(a, 2, 1, 2)).toBe(a);
    expect(dimToRankAxis(a, 2, 1, 2)).toBe(a);
  });

  it('dims and splits', () => {
    expect(normalizeDim(-1, 3, 'x')).toBe(2);
    expect(() => normalizeDim(3, 3, 'allGather')).toThrow(/allGather: dim 3 is out of range for a tensor of rank 3/);
    expect(splitAt([3, 13, 5], 1)).toEqual({ outer: 3, inner: 65 });
  });
});
