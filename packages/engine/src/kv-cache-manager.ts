/**
 * vLLM v1's KVCacheManager: the block table of each request, allocation of
 * the slots a step needs, prefix-cache lookups, and release. The driver owns
 * every block id; ranks only ever see block tables.
 *
 * With a sliding window (every attention layer windowed: vLLM's
 * `SlidingWindowManager`), blocks that fall wholly before the window of a
 * request's next token are freed and their table entries become null (−1 on
 * the ranks): the table keeps its positions, attention never reads them. A
 * long request then holds about window / blockSize + 1 blocks, plus its
 * current chunk. A prefix-cache hit needs only the blocks inside the window
 * of its first new token (found from the right, as vLLM does).
 */
import { BlockPool, type KVBlock } from './block-pool.js';
import type { Request } from './request.js';

export interface KVCacheManagerOptions {
  numBlocks: number;
  blockSize: number;
  enablePrefixCaching: boolean;
  /**
   * Free blocks behind this window (the largest over the model's layers,
   * every layer windowed: `freeableWindow`); null or absent: keep every block.
   */
  slidingWindow?: number | null;
}

export interface ComputedBlocks {
  /** null: a block before the window, not needed (with a sliding window). */
  blocks: Array<KVBlock | null>;
  numTokens: number;
}

/** See `KVCacheManager.maxBlocksPerRequest`; also sizes the pool before any manager exists. */
export function maxBlocksPerRequest(numTokens: number, blockSize: number, slidingWindow: number | null, maxStepTokens: number): number {
  const all = Math.ceil(numTokens / blockSize);
  if (slidingWindow === null) return all;
  // A step's tokens at c .. c + n − 1 and the window of c: blocks ⌊(c − W + 1)/bs⌋ .. ⌊(c + n − 1)/bs⌋.
  return Math.min(all, Math.floor((Math.min(maxStepTokens, numTokens) + slidingWindow - 2) / blockSize) + 2);
}

export class KVCacheManager {
  readonly pool: BlockPool;
  readonly blockSize: number;
  readonly slidingWindow: number | null;
  private readonly tables = new Map<number, Array<KVBlock | null>>();
  /** Full blocks of each request already registered in the prefix cache. */
  private readonly numCachedBlocks = new Map<number, number>();
  /** Prompt tokens looked up and found in the prefix cache (vLLM's prefix cache stats). */
  queries = 0;
  hits = 0;

  constructor(opts: KVCacheManagerOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1) throw new Error(`kv cache: blockSize ${opts.blockSize} must be a positive integer`);
    this.blockSize = opts.blockSize;
    this.slidingWindow = opts.slidingWindow ?? null;
    if (this.slidingWindow !== null && !(Number.isInteger(this.slidingWindow) && this.slidingWindow >= 1)) {
      throw new Error(`kv cache: slidingWindow ${this.slidingWindow} must be a positive integer or null`);
    }
    this.pool = new BlockPool(opts.numBlocks, opts.enablePrefixCaching);
  }

  get enablePrefixCaching(): boolean {
    return this.pool.enableCaching;
  }

  get numBlocks(): number {
    return this.pool.numBlocks;
  }

  get usedBlocks(): number {
    return this.pool.numUsedBlocks;
  }

  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * Blocks wholly before the window of a token at position `pos`: nothing at
   * or after `pos` reads them (vLLM's `get_num_skipped_tokens` in blocks).
   */
  skippedBlocks(pos: number): number {
    return this.slidingWindow === null ? 0 : Math.floor(Math.max(0, pos - this.slidingWindow + 1) / this.blockSize);
  }

  /**
   * Most blocks one request ever holds at once, for `numTokens` tokens fed at
   * most `maxStepTokens` per step: every block without a window; with one,
   * the window's blocks and a step's (a step writes all its tokens before
   * its blocks outside the window can go).
   */
  maxBlocksPerRequest(numTokens: number, maxStepTokens: number): number {
    return maxBlocksPerRequest(numTokens, this.blockSize, this.slidingWindow, maxStepTokens);
  }

  /** Block ids of a request, in order; −1 for a block freed behind the sliding window. */
  blockTable(seqId: number): number[] {
    return (this.tables.get(seqId) ?? []).map((b) => (b === null ? -1 : b.id));
  }

  /** Blocks a request holds (freed ones behind the window not counted). */
  numHeldBlocks(seqId: number): number {
    return (this.tables.get(seqId) ?? []).filter((b) => b !== null).length;
  }

  /**
   * Free the blocks of `req` that its tokens from `numComputedTokens` on will
   * never read (before the window), newest first as vLLM does; their entries
   * become null. Without a window, nothing.
   */
  removeSkippedBlocks(req: Request, numComputedTokens: number): void {
    const table = this.tables.get(req.seqId);
    if (!table || this.slidingWindow === null) return;
    const removed: KVBlock[] = [];
    for (let i = Math.min(this.skippedBlocks(numComputedTokens), table.length) - 1; i >= 0; i--) {
      const b = table[i]!;
      if (b === null) break; // everything before is already freed
      removed.push(b);
      table[i] = null;
    }
    this.pool.free(removed);
  }

  /**
   * The longest cached prefix of `req` in whole blocks, never the whole
   * sequence: at least its last token is computed again (its logits are needed).
   */
  getComputedBlocks(req: Request): ComputedBlocks {
    if (!this.enablePrefixCaching) return { blocks: [], numTokens: 0 };
    req.updateBlockHashes(this.blockSize);
    const maxBlocks = Math.floor((req.numTokens - 1) / this.blockSize);
    if (this.slidingWindow !== null) return this.windowedHit(req, maxBlocks, this.slidingWindow);
    const blocks: KVBlock[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const b = this.pool.lookup(req.blockHashes[i]!);
      if (!b) break;
      blocks.push(b);
    }
    return { blocks, numTokens: blocks.length * this.blockSize };
  }

  /**
   * vLLM's `SlidingWindowManager.find_longest_cache_hit`: from the right, the
   * first run of cached blocks long enough to cover the window of the token
   * after it (ceil((W − 1) / blockSize) blocks) is a hit, whatever precedes
   * it (null); failing that, a run from block 0, however short.
   */
  private windowedHit(req: Request, maxBlocks: number, window: number): ComputedBlocks {
    const need = Math.ceil((window - 1) / this.blockSize);
    const found: Array<KVBlock | null> = new Array<KVBlock | null>(maxBlocks).fill(null);
    let run = 0;
    // A window of one token needs no earlier block at all.
    let end = need === 0 ? maxBlocks : -1;
    for (let i = maxBlocks - 1; i >= 0 && end < 0; i--) {
      const b = this.pool.lookup(req.blockHashes[i]!);
      if (!b) {
        run = 0;
        continue;
      }
      found[i] = b;
      if (++run >= need) end = i + run;
    }
    if (end < 0) end = run; // no long-enough run: only the one from block 0 counts
    const blocks = found.slice(0, end);
    // Before the window of the first new token: not needed (those already set were part of a shorter run).
    for (let i = 0; i < this.skippedBlocks(end * this.blockSize); i++) blocks[i] = null;
    return { blocks, numTokens: end * this.blockSize };
  }

  /**
   * Give `req` the blocks it needs to hold `numNewTokens` more tokens after its
   * computed ones (`computed`: prefix-cache hits, for a request not yet started).
   * Returns false when the pool cannot supply them, changing nothing but the
   * release of blocks behind the window (never read again either way).
   */
  allocateSlots(req: Request, numNewTokens: number, computed: ComputedBlocks = { blocks: [], numTokens: 0 }): boolean {
    const table = this.tables.get(req.seqId) ?? [];
    // Blocks behind the window go back to the pool first, even when the allocation then fails (they are never read again).
    if (table.length) this.removeSkippedBlocks(req, req.numComputedTokens);
    const numComputed = table.length ? req.numComputedTokens : computed.numTokens;
    const need = this.blocksFor(numComputed + numNewTokens) - table.length - computed.blocks.length;
    // Hits before the first new token's window are not taken.
    const skipped = this.skippedBlocks(numComputed);
    const hits = computed.blocks.map((b, i) => (i < skipped ? null : b));
    const held = hits.filter((b): b is KVBlock => b !== null);
    // Cached blocks nobody holds sit in the free queue: touching them takes them out of it.
    const reclaimed = held.filter((b) => b.refCnt === 0).length;
    if (need + reclaimed > this.pool.numFreeBlocks) return false;
    if (!this.tables.has(req.seqId)) this.tables.set(req.seqId, table);
    if (hits.length) {
      this.pool.touch(held);
      table.push(...hits);
      this.numCachedBlocks.set(req.seqId, hits.length);
    }
    if (need > 0) table.push(...this.pool.allocate(need));
    return true;
  }

  /** After a step: register the request's full, now computed blocks in the prefix cache. */
  cacheComputedBlocks(req: Request): void {
    if (!this.enablePrefixCaching) return;
    const table = this.tables.get(req.seqId);
    if (!table) return;
    req.updateBlockHashes(this.blockSize);
    const full = Math.min(Math.floor(req.numComputedTokens / this.blockSize), req.blockHashes.length, table.length);
    for (let i = this.numCachedBlocks.get(req.seqId) ?? 0; i < full; i++) {
      const b = table[i]!;
      if (b !== null) this.pool.cache(b, req.blockHashes[i]!);
    }
    this.numCachedBlocks.set(req.seqId, full);
  }

  /** Release every block of `req`; the tail goes first to the free queue, so it is evicted first. */
  free(req: Request): void {
    const table = this.tables.get(req.seqId);
    this.tables.delete(req.seqId);
    this.numCachedBlocks.delete(req.seqId);
    if (table) this.pool.free(table.filter((b): b is KVBlock => b !== null).reverse());
  }

  /** Fraction of blocks in use. */
  get usage(): number {
    return this.pool.numUsedBlocks / this.pool.numBlocks;
  }
}
