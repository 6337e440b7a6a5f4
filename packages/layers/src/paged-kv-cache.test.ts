import { describe, expect, it } from 'vitest';
import { slotOf, PagedKVCache, type KVCacheSpec } from './paged-kv-cache.js';

const SPEC: KVCacheSpec = { numKvHeads: 2, headDim: 3, vHeadDim: 4, valueIsKeyPrefix: false };

/** Token t's K row is t·100 + head·10 + dim, V row t·100 + head·10 + 5 + dim: every float says where it came from. */
function rows(tokens: number[], Hk: number, width: number, base: number): Float32Array {
  return Float32Array.from(tokens.flatMap((t) => Array.from({ length: Hk * width }, (_, i) => t * 100 + Math.floor(i / width) * 10 + base + (i % width))));
}

describe('PagedKVCache', () => {
  it('sizes blocks: K and V per token and head, K only when V is its prefix', () => {
    expect(PagedKVCache.bytesPerBlock(SPEC, 16)).toBe(16 * 2 * (3 + 4) * 4);
    expect(PagedKVCache.bytesPerBlock({ numKvHeads: 1, headDim: 576, vHeadDim: 512, valueIsKeyPrefix: true }, 16)).toBe(16 * 576 * 4);
    const c = new PagedKVCache({ ...SPEC, numBlocks: 5, blockSize: 3 });
    expect(c.bytesPerBlock).toBe(3 * 2 * 7 * 4);
    expect(c.bytes).toBe(5 * c.bytesPerBlock);
    expect(c.spec).toEqual(SPEC);
    const mla = new PagedKVCache({ numKvHeads: 1, headDim: 6, vHeadDim: 4, valueIsKeyPrefix: true, numBlocks: 2, blockSize: 4 });
    expect(mla.bytes).toBe(2 * 4 * 6 * 4);
  });

  it('writes each token into its slot and reads a sequence back through a shuffled block table', () => {
    const blockSize = 3;
    const c = new PagedKVCache({ ...SPEC, numBlocks: 6, blockSize });
    const table = [4, 0, 5]; // positions 0..7
    const positions = [0, 1, 2, 3, 4, 5, 6, 7];
    // Written out of order, in two steps, as prefill and decode would.
    const first = [0, 1, 2, 3, 4];
    c.write(first.map((p) => slotOf(table, blockSize, p)), rows(first, 2, 3, 0), rows(first, 2, 4, 5));
    const rest = [7, 5, 6];
    c.write(rest.map((p) => slotOf(table, blockSize, p)), rows(rest, 2, 3, 0), rows(rest, 2, 4, 5));

    const k = new Float32Array(8 * 2 * 3);
    c.gatherTokenMajor('key', table, 8, k);
    expect(Array.from(k)).toEqual(Array.from(rows(positions, 2, 3, 0)));
    const v = new Float32Array(8 * 2 * 4);
    c.gatherTokenMajor('value', table, 8, v);
    expect(Array.from(v)).toEqual(Array.from(rows(positions, 2, 4, 5)));

    // Head-major with room for 10 positions, at an offset: padding and the prefix stay as they were.
    const stride = 10;
    const out = new Float32Array(7 + 2 * stride * 3).fill(-1);
    c.gatherHeadMajor('key', table, 8, out, 7, stride);
    expect(Array.from(out.subarray(0, 7))).toEqual(Array(7).fill(-1));
    for (let h = 0; h < 2; h++) {
      for (let p = 0; p < stride; p++) {
        const got = Array.from(out.subarray(7 + (h * stride + p) * 3, 7 + (h * stride + p + 1) * 3));
        expect(got).toEqual(p < 8 ? [0, 1, 2].map((x) => p * 100 + h * 10 + x) : [-1, -1, -1]);
      }
    }
    // Only the pool's own blocks were touched: block 1 (unused by the table) is still zero.
    const other = new Float32Array(3 * 2 * 3);
    c.gatherTokenMajor('key', [1], 3, other);
    expect(other.every((x) => x === 0)).toBe(true);
  });

  it('gathers from a start position, never reading the blocks before it (a sliding window\'s freed −1 entries)', () => {
    const blockSize = 3;
    const c = new PagedKVCache({ ...SPEC, numBlocks: 6, blockSize });
    const table = [4, 0, 5]; // positions 0..7
    const positions = [0, 1, 2, 3, 4, 5, 6, 7];
    c.write(positions.map((p) => slotOf(table, blockSize, p)), rows(positions, 2, 3, 0), rows(positions, 2, 4, 5));
    const freed = [-1, 0, 5];
    const k = new Float32Array(4 * 2 * 3);
    c.gatherTokenMajor('key', freed, 8, k, 4);
    expect(Array.from(k)).toEqual(Array.from(rows([4, 5, 6, 7], 2, 3, 0)));
    // Head-major from position 4 (mid-block), stride 5: positions 4..7 then one padding row.
    const out = new Float32Array(2 * 5 * 4).fill(-1);
    c.gatherHeadMajor('value', freed, 8, out, 0, 5, 4);
    for (let h = 0; h < 2; h++) {
      for (let i = 0; i < 5; i++) {
        const got = Array.from(out.subarray((h * 5 + i) * 4, (h * 5 + i + 1) * 4));
        expect(got).toEqual(i < 4 ? [0, 1, 2, 3].map((x) => (4 + i) * 100 + h * 10 + 5 + x) : [-1, -1, -1, -1]);
      }
    }
    // Starting in the freed block reads it: refused.
    expect(() => c.gatherTokenMajor('key', freed, 8, k, 2)).toThrow(/block id -1 is outside the pool/);
    expect(() => c.gatherTokenMajor('key', freed, 8, k, 9)).toThrow(/gather start 9 must be in \[0, 8\]/);
  });

  it('shares blocks: two tables pointing at one block read the same rows', () => {
    const c = new PagedKVCache({ numKvHeads: 1, headDim: 2, vHeadDim: 2, valueIsKeyPrefix: true, numBlocks: 4, blockSize: 2 });
    c.write([6, 7], Float32Array.from([1, 2, 3, 4]), null);
    c.write([2], Float32Array.from([5, 6]), null);
    c.write([0], Float32Array.from([7, 8]), null);
    const a = new Float32Array(6);
    const b = new Float32Array(6);
    c.gatherTokenMajor('key', [3, 1], 3, a);
    c.gatherTokenMajor('key', [3, 0], 3, b);
    expect(Array.from(a)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(b)).toEqual([1, 2, 3, 4, 7, 8]);
    expect(() => c.gatherTokenMajor('value', [3], 1, a)).toThrow(/values are the key prefix/);
  });

  it('rejects bad sizes, slots, tables, and use after dispose', () => {
    expect(() => new PagedKVCache({ ...SPEC, numBlocks: 2, blockSize: 0 })).toThrow(/blockSize must be a positive integer, got 0/);
    expect(() => new PagedKVCache({ ...SPEC, numBlocks: 2.5, blockSize: 4 })).toThrow(/numBlocks/);
    expect(() => new PagedKVCache({ numKvHeads: 1, headDim: 4, vHeadDim: 8, valueIsKeyPrefix: true, numBlocks: 2, blockSize: 4 })).toThrow(/vHeadDim 8 cannot be a prefix/);
    const c = new PagedKVCache({ ...SPEC, numBlocks: 2, blockSize: 2 });
    expect(() => c.write([4], rows([0], 2, 3, 0), rows([0], 2, 4, 5))).toThrow(/slot 4 is outside the pool of 2 blocks × 2/);
    expect(() => c.write([0, 1], rows([0], 2, 3, 0), rows([0], 2, 4, 5))).toThrow(/k has 6 floats, expected 2 tokens × 2 heads × 3/);
    expect(() => c.write([0], rows([0], 2, 3, 0), null)).toThrow(/v must be given/);
    expect(() => c.write([0], rows([0], 2, 3, 0), rows([0], 2, 3, 5))).toThrow(/v has 6 floats/);
    const out = new Float32Array(100);
    expect(() => c.gatherTokenMajor('key', [0], 3, out)).toThrow(/3 tokens need 2 blocks of 2, the block table has 1/);
    expect(() => c.gatherHeadMajor('key', [0, 2], 3, out)).toThrow(/block id 2 is outside the pool of 2 blocks/);
    c.dispose();
    expect(c.bytes).toBe(0);
    expect(() => c.gatherTokenMajor('key', [0], 1, out)).toThrow(/after dispose/);
  });
});
