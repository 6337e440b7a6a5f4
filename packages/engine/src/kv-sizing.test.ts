import { describe, expect, it } from 'vitest';
import { numKvBlocks } from './kv-sizing.js';

const ctx = { bytesPerBlock: [1000, 3000, 0], blockSize: 16, maxModelLen: 100, maxNumSeqs: 4, freeBytes: 90_000 };

describe('KV pool sizing', () => {
  it('the rank with the largest blocks decides; capped at maxNumSeqs × blocks of maxModelLen', () => {
    expect(numKvBlocks({ kvCacheBytes: 30_000 }, ctx)).toBe(10);
    expect(numKvBlocks({ kvCacheBytes: 1e9 }, ctx)).toBe(4 * 7);
    // 0.5 of 90 000 bytes over 3 ranks = 15 000 per rank = 5 blocks of 3 000.
    expect(numKvBlocks({ kvCacheMemoryFraction: 0.5 }, ctx)).toBe(5);
    expect(numKvBlocks({ numKvBlocks: 3 }, ctx)).toBe(3);
  });
  it('with a sliding window the cap is the blocks a sequence holds at once', () => {
    expect(numKvBlocks({ kvCacheBytes: 1e9 }, { ...ctx, maxBlocksPerSeq: 3 })).toBe(4 * 3);
  });
  it('refuses budgets that hold nothing, naming the option', () => {
    expect(() => numKvBlocks({ kvCacheBytes: 100 }, ctx)).toThrow(/holds no block of 3000 bytes.*kvCacheBytes/);
    expect(() => numKvBlocks({ kvCacheMemoryFraction: 2 }, ctx)).toThrow(/kvCacheMemoryFraction/);
    expect(() => numKvBlocks({ numKvBlocks: 0 }, ctx)).toThrow(/numKvBlocks/);
  });
});
