import { describe, expect, it } from 'vitest';
import { BlockPool } from './block-pool.js';
import { KVCacheManager } from './kv-cache-manager.js';
import { Request } from './request.js';
import { resolveSamplingParams } from './sampling-params.js';

const params = resolveSamplingParams({ maxTokens: 4 });
let nextId = 1;
const req = (tokens: number[]) => new Request(nextId++, tokens, params);
const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);

describe('BlockPool', () => {
  it('hands out free blocks in order, takes them back at the tail, evicts cached content when reused', () => {
    const pool = new BlockPool(5, true);
    const [a, b, c] = pool.allocate(3);
    expect([a!.id, b!.id, c!.id]).toEqual([0, 1, 2]);
    pool.cache(a!, 'h0');
    pool.free([c!, b!, a!]);
    expect(pool.numFreeBlocks).toBe(5);
    expect(pool.lookup('h0')).toBe(a);
    // Free queue: 3 4 2 1 0 — the cached block 0 goes last.
    expect(pool.allocate(4).map((x) => x.id)).toEqual([3, 4, 2, 1]);
    expect(pool.lookup('h0')).toBe(a);
    pool.allocate(1);
    expect(pool.lookup('h0')).toBeUndefined();
    expect(() => pool.allocate(1)).toThrow(/1 blocks asked, 0 free/);
  });

  it('touching a cached free block takes it out of the queue; double free throws', () => {
    const pool = new BlockPool(3, true);
    const [a] = pool.allocate(1);
    pool.cache(a!, 'x');
    pool.free([a!]);
    pool.touch([a!]);
    expect(pool.numFreeBlocks).toBe(2);
    expect(a!.refCnt).toBe(1);
    pool.free([a!]);
    expect(() => pool.free([a!])).toThrow(/freed twice/);
  });
});

describe('KVCacheManager', () => {
  it('allocates ceil(tokens / blockSize) blocks, grows by one block at the boundary, refuses past the pool', () => {
    const kv = new KVCacheManager({ numBlocks: 7, blockSize: 5, enablePrefixCaching: false });
    const r = req(range(0, 11));
    expect(kv.allocateSlots(r, 11)).toBe(true);
    expect(kv.blockTable(r.seqId)).toHaveLength(3);
    r.numComputedTokens = 11;
    r.appendOutput(99);
    expect(kv.allocateSlots(r, 1)).toBe(true); // token 12 still fits block 3
    expect(kv.blockTable(r.seqId)).toHaveLength(3);
    const big = req(range(0, 21));
    expect(kv.allocateSlots(big, 21)).toBe(false); // 5 blocks, 4 free
    expect(kv.usedBlocks).toBe(3);
    kv.free(r);
    expect(kv.usedBlocks).toBe(0);
  });

  it('prefix caching: full computed blocks are shared, the last token is always recomputed, LRU eviction', () => {
    const bs = 4;
    const kv = new KVCacheManager({ numBlocks: 6, blockSize: bs, enablePrefixCaching: true });
    const a = req(range(100, 10)); // 2 full blocks + 2
    expect(kv.getComputedBlocks(a).numTokens).toBe(0);
    kv.allocateSlots(a, 10);
    a.numComputedTokens = 10;
    kv.cacheComputedBlocks(a);
    // Same first 9 tokens: both full blocks hit.
    const b = req([...range(100, 9), 7, 7, 7]);
    const hit = kv.getComputedBlocks(b);
    expect(hit.numTokens).toBe(8);
    expect(hit.blocks.map((x) => x!.id)).toEqual(kv.blockTable(a.seqId).slice(0, 2));
    expect(kv.allocateSlots(b, 12 - 8, hit)).toBe(true);
    expect(kv.blockTable(b.seqId).slice(0, 2)).toEqual(kv.blockTable(a.seqId).slice(0, 2));
    expect(kv.usedBlocks).toBe(4); // 3 of a + 1 new of b
    // A prompt that is exactly the cached 8 tokens: only the first block may hit (the last token is recomputed).
    expect(kv.getComputedBlocks(req(range(100, 8))).numTokens).toBe(4);
    kv.free(a);
    kv.free(b);
    expect(kv.usedBlocks).toBe(0);
    // Unreferenced cached blocks survive until the pool needs them.
    expect(kv.getComputedBlocks(req(range(100, 9))).numTokens).toBe(8);
    const filler = req(range(0, 6 * bs));
    expect(kv.allocateSlots(filler, 6 * bs)).toBe(true);
    kv.free(filler);
    expect(kv.getComputedBlocks(req(range(100, 9))).numTokens).toBe(0);
  });
});
