import { describe, expect, it } from 'vitest';
import { poissonArrivals, servingRequests } from './requests.js';
import { mean, median, percentile } from './stats.js';

describe('bench statistics', () => {
  it('percentile is numpy\'s default (linear between ranks)', () => {
    // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 99, 100]) = [1, 1.75, 2.5, 3.97, 4]
    expect([0, 25, 50, 99, 100].map((p) => percentile([4, 1, 3, 2], p))).toEqual([1, 1.75, 2.5, expect.closeTo(3.97, 10), 4]);
    expect(median([5, 1, 3])).toBe(3);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(mean([1, 2, 6])).toBe(3);
    expect(() => percentile([1], 101)).toThrow(/p must be in \[0, 100\], got 101/);
  });

  it('the request set is the same for the same seed, within its ranges', () => {
    const a = servingRequests(50, 4096, 1);
    expect(servingRequests(50, 4096, 1)).toEqual(a);
    expect(servingRequests(50, 4096, 2)).not.toEqual(a);
    for (const q of a) {
      expect(q.promptTokenIds.length).toBeGreaterThanOrEqual(32);
      expect(q.promptTokenIds.length).toBeLessThanOrEqual(256);
      expect(q.maxTokens).toBeGreaterThanOrEqual(16);
      expect(q.maxTokens).toBeLessThanOrEqual(128);
      expect(Math.min(...q.promptTokenIds)).toBeGreaterThanOrEqual(3);
      expect(Math.max(...q.promptTokenIds)).toBeLessThan(4096);
    }
    const t = poissonArrivals(2000, 10, 1);
    expect(t.every((x, i) => i === 0 || x >= t[i - 1]!)).toBe(true);
    expect(t.at(-1)! / 2000).toBeCloseTo(0.1, 1);
    expect(poissonArrivals(3, Infinity, 1)).toEqual([0, 0, 0]);
  });
});
