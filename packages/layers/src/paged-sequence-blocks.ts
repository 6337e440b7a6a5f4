/**
 * A stop-gap for drivers without a block manager (today's rank runner): each
 * rank allocates blocks to sequences itself, first come first served, and
 * frees them when the driver frees the sequence. No sharing, no prefix
 * cache, no preemption: @weft/engine's KVCacheManager replaces it.
 */
import { ConfigError } from '@weft/core';
import { DEFAULT_BLOCK_SIZE } from './attention-metadata.js';
import { PagedKVCache, type KVCacheSpec } from './paged-kv-cache.js';

export class SequenceBlockAllocator {
  private readonly free: number[];
  private readonly tables = new Map<number, number[]>();

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    // Popped from the end: block 0 goes first.
    this.free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  get numFreeBlocks(): number {
    return this.free.length;
  }

  /** The block table of `seqId`, grown to cover `numTokens` positions. */
  tableFor(seqId: number, numTokens: number): number[] {
    let table = this.tables.get(seqId);
    if (!table) this.tables.set(seqId, (table = []));
    const need = Math.ceil(numTokens / this.blockSize);
    if (need - table.length > this.free.length) {
      throw new ConfigError(
        `kv cache full: sequence ${seqId} needs ${need - table.length} more blocks of ${this.blockSize} tokens, ` +
          `${this.free.length} of ${this.numBlocks} are free (raise kvCacheBytes)`,
      );
    }
    while (table.length < need) table.push(this.free.pop()!);
    return table;
  }

  /** Returns the blocks of a finished sequence to the pool. */
  freeSequence(seqId: number): void {
    const table = this.tables.get(seqId);
    if (!table) return;
    for (let i = table.length - 1; i >= 0; i--) this.free.push(table[i]!);
    this.tables.delete(seqId);
  }
}

export interface SequencePagedCachesOptions {
  /** Bytes for all of this rank's layers; default room for 65,536 tokens, at most 1 GiB. */
  kvCacheBytes?: number;
  blockSize?: number;
}

/** A pool for every layer of `model` sized to `kvCacheBytes`, bound to it, with a per-sequence allocator over it. */
export function bindSequencePagedCaches(
  model: { kvCacheSpecs(): KVCacheSpec[]; bindKVCaches(caches: PagedKVCache[]): void },
  opts: SequencePagedCachesOptions = {},
): { allocator: SequenceBlockAllocator; caches: PagedKVCache[]; dispose(): void } {
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  const specs = model.kvCacheSpecs();
  const perBlock = specs.reduce((a, s) => a + PagedKVCache.bytesPerBlock(s, blockSize), 0);
  const bytes = opts.kvCacheBytes ?? Math.min(2 ** 30, (65536 / blockSize) * perBlock);
  // A stage without attention layers stores nothing: its block ids are only bookkeeping.
  const numBlocks = perBlock > 0 ? Math.floor(bytes / perBlock) : 65536 / blockSize;
  if (numBlocks < 1) throw new ConfigError(`kvCacheBytes ${bytes} is less than one block (${perBlock} bytes for ${specs.length} layers)`);
  const caches = specs.map((s) => new PagedKVCache({ ...s, numBlocks, blockSize }));
  model.bindKVCaches(caches);
  return {
    allocator: new SequenceBlockAllocator(numBlocks, blockSize),
    caches,
    dispose: () => caches.forEach((c) => c.dispose()),
  };
}
