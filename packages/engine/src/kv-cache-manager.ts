/**
 * vLLM v1's KVCacheManager: the block table of each request, allocation of
 * the slots a step needs, prefix-cache lookups, and release. The driver owns
 * every block id; ranks only ever see block tables.
 */
import { BlockPool, type KVBlock } from './block-pool.js';
import type { Request } from './request.js';

export interface KVCacheManagerOptions {
  numBlocks: number;
  blockSize: number;
  enablePrefixCaching: boolean;
}

export interface ComputedBlocks {
  blocks: KVBlock[];
  numTokens: number;
}

export class KVCacheManager {
  readonly pool: BlockPool;
  readonly blockSize: number;
  private readonly tables = new Map<number, KVBlock[]>();
  /** Full blocks of each request already registered in the prefix cache. */
  private readonly numCachedBlocks = new Map<number, number>();
  /** Prompt tokens looked up and found in the prefix cache (vLLM's prefix cache stats). */
  queries = 0;
  hits = 0;

  constructor(opts: KVCacheManagerOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1) throw new Error(`kv cache: blockSize ${opts.blockSize} must be a positive integer`);
    this.blockSize = opts.blockSize;
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

  /** Block ids of a request, in order. */
  blockTable(seqId: number): number[] {
    return (this.tables.get(seqId) ?? []).map((b) => b.id);
  }

  /**
   * The longest cached prefix of `req` in whole blocks, never the whole
   * sequence: at least its last token is computed again (its logits are needed).
   */
  getComputedBlocks(req: Request): ComputedBlocks {
    if (!this.enablePrefixCaching) return { blocks: [], numTokens: 0 };
    req.updateBlockHashes(this.blockSize);
    const maxBlocks = Math.floor((req.numTokens - 1) / this.blockSize);
    const blocks: KVBlock[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const b = this.pool.lookup(req.blockHashes[i]!);
      if (!b) break;
      blocks.push(b);
    }
    return { blocks, numTokens: blocks.length * this.blockSize };
  }

  /**
   * Give `req` the blocks it needs to hold `numNewTokens` more tokens after its
   * computed ones (`computed`: prefix-cache hits, for a request not yet started).
   * Returns false, changing nothing, when the pool cannot supply them.
   */
  allocateSlots(req: Request, numNewTokens: number, computed: ComputedBlocks = { blocks: [], numTokens: 0 }): boolean {
    const table = this.tables.get(req.seqId) ?? [];
    const numComputed = table.length ? req.numComputedTokens : computed.numTokens;
    const need = this.blocksFor(numComputed + numNewTokens) - table.length - computed.blocks.length;
    // Cached blocks nobody holds sit in the free queue: touching them takes them out of it.
    const reclaimed = computed.blocks.filter((b) => b.refCnt === 0).length;
    if (need + reclaimed > this.pool.numFreeBlocks) return false;
    if (!this.tables.has(req.seqId)) this.tables.set(req.seqId, table);
    if (computed.blocks.length) {
      this.pool.touch(computed.blocks);
      table.push(...computed.blocks);
      this.numCachedBlocks.set(req.seqId, computed.blocks.length);
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
    let i = this.numCachedBlocks.get(req.seqId) ?? 0;
    for (; i < full; i++) this.pool.cache(table[i]!, req.blockHashes[i]!);
    this.numCachedBlocks.set(req.seqId, full);
  }

  /** Release every block of `req`; the tail goes first to the free queue, so it is evicted first. */
  free(req: Request): void {
    const table = this.tables.get(req.seqId);
    this.tables.delete(req.seqId);
    this.numCachedBlocks.delete(req.seqId);
    if (table) this.pool.free([...table].reverse());
  }

  /** Fraction of blocks in use. */
  get usage(): number {
    return this.pool.numUsedBlocks / this.pool.numBlocks;
  }
}
