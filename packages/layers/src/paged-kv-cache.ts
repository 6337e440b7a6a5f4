/**
 * One attention layer's paged KV cache on one rank (vLLM's PagedAttention
 * pool): `numBlocks` blocks of `blockSize` token slots, preallocated. The
 * engine's block manager owns which blocks a sequence uses; a sequence's
 * block table maps its position p to slot
 * `blockTable[⌊p / blockSize⌋] · blockSize + p mod blockSize`.
 *
 * TF.js tensors are immutable, so the pool lives in host memory
 * (Float32Array) and a token's K/V is written in place: O(1) per token.
 * Attention reads a sequence's context by gathering its blocks into a new
 * tensor. Within a block the layout is head-major, `[Hk, blockSize, D]`,
 * so one copy moves a whole block of one head, and a gather can produce the
 * `[Hk, n, D]` layout batched attention multiplies with, without a transpose.
 *
 * With `valueIsKeyPrefix` (MLA's latent cache: V = the first vHeadDim dims
 * of K) only K is stored.
 */
import { ConfigError } from '@weft/core';

/** What one attention layer caches per token on this rank. */
export interface KVCacheSpec {
  /** KV heads on this rank. */
  numKvHeads: number;
  /** Key head size. */
  headDim: number;
  /** Value head size (with `valueIsKeyPrefix`: the width of the key prefix read as V). */
  vHeadDim: number;
  /** V is the first vHeadDim dims of K: only K is stored. */
  valueIsKeyPrefix: boolean;
  /**
   * The layer attends only the last `slidingWindow` positions (see
   * `AttentionOptions.slidingWindow`); null or absent: every position. The
   * engine frees blocks that fall wholly outside every layer's window
   * (`freeableWindow`). Not part of the storage layout.
   */
  slidingWindow?: number | null;
}

/**
 * The window the engine may free blocks behind, over every attention layer
 * of the model (all ranks' `kvCacheSpecs()` together): the largest window
 * when every layer has one, else null (a layer with global attention, e.g.
 * Gemma 2's global layers or Qwen2's layers below `max_window_layers`, reads
 * every block). Null for no layers at all.
 */
export function freeableWindow(windows: ReadonlyArray<number | null | undefined>): number | null {
  if (windows.length === 0 || windows.some((w) => w === null || w === undefined)) return null;
  return Math.max(...(windows as number[]));
}

export interface PagedKVCacheOptions extends KVCacheSpec {
  numBlocks: number;
  /** Tokens per block. */
  blockSize: number;
}

const BYTES_PER_FLOAT = 4;

export class PagedKVCache implements KVCacheSpec {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly valueIsKeyPrefix: boolean;
  /** Keys, `[numBlocks, Hk, blockSize, headDim]`. */
  private keys: Float32Array;
  /** Values, `[numBlocks, Hk, blockSize, vHeadDim]`; empty with valueIsKeyPrefix. */
  private values: Float32Array;

  /** Bytes one block of `blockSize` tokens takes for a layer of this spec. */
  static bytesPerBlock(spec: KVCacheSpec, blockSize: number): number {
    const v = spec.valueIsKeyPrefix ? 0 : spec.vHeadDim;
    return blockSize * spec.numKvHeads * (spec.headDim + v) * BYTES_PER_FLOAT;
  }

  constructor(opts: PagedKVCacheOptions) {
    for (const key of ['numBlocks', 'blockSize', 'numKvHeads', 'headDim', 'vHeadDim'] as const) {
      const x = opts[key];
      if (!Number.isInteger(x) || x < (key === 'numBlocks' ? 0 : 1)) throw new ConfigError(`paged kv cache: ${key} must be a positive integer, got ${x}`);
    }
    if (opts.valueIsKeyPrefix && opts.vHeadDim > opts.headDim) {
      throw new ConfigError(`paged kv cache: vHeadDim ${opts.vHeadDim} cannot be a prefix of keys of size ${opts.headDim}`);
    }
    this.numBlocks = opts.numBlocks;
    this.blockSize = opts.blockSize;
    this.numKvHeads = opts.numKvHeads;
    this.headDim = opts.headDim;
    this.vHeadDim = opts.vHeadDim;
    this.valueIsKeyPrefix = opts.valueIsKeyPrefix;
    const slots = this.numBlocks * this.blockSize * this.numKvHeads;
    try {
      this.keys = new Float32Array(slots * this.headDim);
      this.values = new Float32Array(this.valueIsKeyPrefix ? 0 : slots * this.vHeadDim);
    } catch (e) {
      throw new ConfigError(
        `paged kv cache: cannot allocate ${this.numBlocks} blocks × ${this.bytesPerBlock} bytes ` +
          `(${((this.numBlocks * this.bytesPerBlock) / 2 ** 30).toFixed(2)} GiB): ${(e as Error).message}`,
      );
    }
  }

  /** The spec this pool was built for. */
  get spec(): KVCacheSpec {
    return { numKvHeads: this.numKvHeads, headDim: this.headDim, vHeadDim: this.vHeadDim, valueIsKeyPrefix: this.valueIsKeyPrefix };
  }

  get bytesPerBlock(): number {
    return PagedKVCache.bytesPerBlock(this, this.blockSize);
  }

  /** Bytes the whole pool holds. */
  get bytes(): number {
    return (this.keys.length + this.values.length) * BYTES_PER_FLOAT;
  }

  /**
   * Write token rows into their slots: row i of `k [n, Hk, headDim]` (and of
   * `v [n, Hk, vHeadDim]`, null with valueIsKeyPrefix) goes to `slots[i]`.
   */
  write(slots: ArrayLike<number>, k: Float32Array, v: Float32Array | null): void {
    const n = slots.length;
    const { numKvHeads: Hk, headDim: D, vHeadDim: Dv } = this;
    if (k.length !== n * Hk * D) throw new ConfigError(`paged kv cache: k has ${k.length} floats, expected ${n} tokens × ${Hk} heads × ${D}`);
    if (this.valueIsKeyPrefix !== (v === null)) throw new ConfigError(`paged kv cache: v must be ${this.valueIsKeyPrefix ? 'null (it is read from K)' : 'given'}`);
    if (v && v.length !== n * Hk * Dv) throw new ConfigError(`paged kv cache: v has ${v.length} floats, expected ${n} tokens × ${Hk} heads × ${Dv}`);
    const bs = this.blockSize;
    const total = this.numBlocks * bs;
    for (let i = 0; i < n; i++) {
      const slot = slots[i]!;
      if (!(slot >= 0 && slot < total)) throw new ConfigError(`paged kv cache: slot ${slot} is outside the pool of ${this.numBlocks} blocks × ${bs}`);
      const block = Math.floor(slot / bs);
      const off = slot - block * bs;
      for (let h = 0; h < Hk; h++) {
        const dst = (block * Hk + h) * bs + off;
        const src = i * Hk + h;
        this.keys.set(k.subarray(src * D, (src + 1) * D), dst * D);
        if (v) this.values.set(v.subarray(src * Dv, (src + 1) * Dv), dst * Dv);
      }
    }
  }

  /**
   * Copy positions `start .. n − 1` of a sequence (through its block table)
   * into `out`, head-major: head h, position p lands at
   * `out[offset + (h · stride + p − start) · width]`, width = headDim for
   * keys, vHeadDim for values. `stride ≥ n − start` leaves room for padding
   * (batched decode); the padding is left as it is. Blocks wholly before
   * `start` are not read (a sliding window's freed blocks: −1 in the table).
   */
  gatherHeadMajor(which: 'key' | 'value', blockTable: ArrayLike<number>, n: number, out: Float32Array, offset = 0, stride = n, start = 0): void {
    const [src, width] = this.source(which);
    const { numKvHeads: Hk, blockSize: bs } = this;
    this.checkTable(blockTable, n, start);
    for (let b = Math.floor(start / bs); b * bs < n; b++) {
      const block = blockTable[b]!;
      const p0 = Math.max(start, b * bs);
      const count = Math.min((b + 1) * bs, n) - p0;
      for (let h = 0; h < Hk; h++) {
        const from = ((block * Hk + h) * bs + (p0 - b * bs)) * width;
        out.set(src.subarray(from, from + count * width), offset + (h * stride + p0 - start) * width);
      }
    }
  }

  /** Positions `start .. n − 1` of a sequence, token-major: `out [n − start, Hk, width]`. */
  gatherTokenMajor(which: 'key' | 'value', blockTable: ArrayLike<number>, n: number, out: Float32Array, start = 0): void {
    const [src, width] = this.source(which);
    const { numKvHeads: Hk, blockSize: bs } = this;
    this.checkTable(blockTable, n, start);
    for (let p = start; p < n; p++) {
      const b = Math.floor(p / bs);
      const block = blockTable[b]!;
      const off = p - b * bs;
      for (let h = 0; h < Hk; h++) {
        const from = ((block * Hk + h) * bs + off) * width;
        out.set(src.subarray(from, from + width), ((p - start) * Hk + h) * width);
      }
    }
  }

  /** Releases the pool. The cache must not be used afterwards. */
  dispose(): void {
    this.keys = new Float32Array(0);
    this.values = new Float32Array(0);
  }

  private source(which: 'key' | 'value'): [Float32Array, number] {
    if (which === 'key') return [this.keys, this.headDim];
    if (this.valueIsKeyPrefix) throw new ConfigError('paged kv cache: values are the key prefix here; gather keys instead');
    return [this.values, this.vHeadDim];
  }

  private checkTable(blockTable: ArrayLike<number>, n: number, start: number): void {
    if (!(Number.isInteger(start) && start >= 0 && start <= n)) throw new ConfigError(`paged kv cache: gather start ${start} must be in [0, ${n}]`);
    const need = Math.ceil(n / this.blockSize);
    if (blockTable.length < need) throw new ConfigError(`paged kv cache: ${n} tokens need ${need} blocks of ${this.blockSize}, the block table has ${blockTable.length}`);
    for (let b = Math.floor(start / this.blockSize); b < need; b++) {
      const id = blockTable[b]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.numBlocks) throw new ConfigError(`paged kv cache: block id ${id} is outside the pool of ${this.numBlocks} blocks`);
    }
    if (this.keys.length === 0 && this.numBlocks > 0) throw new ConfigError('paged kv cache: used after dispose()');
  }
}

/** The pool slot of position `p` of a sequence with this block table. */
export function slotOf(blockTable: ArrayLike<number>, blockSize: number, p: number): number {
  const b = Math.floor(p / blockSize);
  const id = blockTable[b];
  if (id === undefined) throw new ConfigError(`paged kv cache: position ${p} needs block ${b}, the block table has ${blockTable.length}`);
  return id * blockSize + (p - b * blockSize);
}
