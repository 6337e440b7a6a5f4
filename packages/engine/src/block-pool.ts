/**
 * vLLM v1's block pool: a fixed number of KV blocks, each with a reference
 * count and, once full and computed, a hash under which other requests may
 * reuse it (prefix caching). Unreferenced blocks wait in a free queue in
 * eviction order: a cached block stays reusable until it reaches the head and
 * is handed out again, so the least recently freed go first.
 */
import { createHash } from 'node:crypto';

export type BlockHash = string;

export interface KVBlock {
  readonly id: number;
  refCnt: number;
  /** Set once the block is full, computed and registered in the cache. */
  hash: BlockHash | null;
}

/** Hash of a full block: (parent block's hash, its token ids). */
export function hashBlockTokens(parent: BlockHash | null, tokens: ArrayLike<number>): BlockHash {
  const h = createHash('sha256');
  h.update(parent ?? 'root');
  h.update(new Uint8Array(Int32Array.from(tokens).buffer));
  return h.digest('base64');
}

export class BlockPool {
  readonly blocks: KVBlock[];
  private readonly cached = new Map<BlockHash, KVBlock>();
  // Doubly linked free queue over block ids; -1 = none.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly inQueue: Uint8Array;
  private head = -1;
  private tail = -1;
  private nFree = 0;

  constructor(readonly numBlocks: number, readonly enableCaching: boolean) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new Error(`block pool: numBlocks ${numBlocks} must be a positive integer`);
    this.blocks = Array.from({ length: numBlocks }, (_, id) => ({ id, refCnt: 0, hash: null }));
    this.prev = new Int32Array(numBlocks).fill(-1);
    this.next = new Int32Array(numBlocks).fill(-1);
    this.inQueue = new Uint8Array(numBlocks);
    for (let i = 0; i < numBlocks; i++) this.append(i);
  }

  get numFreeBlocks(): number {
    return this.nFree;
  }

  /** Blocks held by at least one request. */
  get numUsedBlocks(): number {
    return this.numBlocks - this.nFree;
  }

  get numCachedBlocks(): number {
    return this.cached.size;
  }

  /** The cached block holding exactly this prefix, if any. */
  lookup(hash: BlockHash): KVBlock | undefined {
    return this.cached.get(hash);
  }

  /** Take `n` blocks from the head of the free queue (evicting their cached content). Throws if there are fewer. */
  allocate(n: number): KVBlock[] {
    if (n > this.nFree) throw new Error(`block pool: ${n} blocks asked, ${this.nFree} free`);
    const out: KVBlock[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.blocks[this.head]!;
      this.remove(b.id);
      this.evict(b);
      b.refCnt = 1;
      out.push(b);
    }
    return out;
  }

  /** A request starts using cached blocks: unreferenced ones leave the free queue. */
  touch(blocks: KVBlock[]): void {
    for (const b of blocks) {
      if (b.refCnt === 0) this.remove(b.id);
      b.refCnt++;
    }
  }

  /** Drop one reference from each; blocks that reach zero join the free queue's tail, in the order given. */
  free(blocks: Iterable<KVBlock>): void {
    for (const b of blocks) {
      if (b.refCnt <= 0) throw new Error(`block pool: block ${b.id} freed twice`);
      if (--b.refCnt === 0) this.append(b.id);
    }
  }

  /** Register a full, computed block under its hash (first writer wins: a duplicate stays uncached). */
  cache(block: KVBlock, hash: BlockHash): void {
    if (!this.enableCaching || block.hash !== null || this.cached.has(hash)) return;
    block.hash = hash;
    this.cached.set(hash, block);
  }

  /** Forget every cached hash (the blocks themselves stay where they are). */
  resetPrefixCache(): void {
    for (const b of this.cached.values()) b.hash = null;
    this.cached.clear();
  }

  private evict(b: KVBlock): void {
    if (b.hash !== null) {
      this.cached.delete(b.hash);
      b.hash = null;
    }
  }

  private append(id: number): void {
    this.prev[id] = this.tail;
    this.next[id] = -1;
    if (this.tail >= 0) this.next[this.tail] = id;
    else this.head = id;
    this.tail = id;
    this.inQueue[id] = 1;
    this.nFree++;
  }

  private remove(id: number): void {
    if (!this.inQueue[id]) throw new Error(`block pool: block ${id} is not free`);
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
    this.inQueue[id] = 0;
    this.nFree--;
  }
}
