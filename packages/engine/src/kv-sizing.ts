/**
 * How many KV blocks each replica gets: what every rank can hold of its
 * budget (`kvCacheBytes` per rank, or a fraction of free host memory — the
 * pools live in host memory — like vLLM's `gpu_memory_utilization`), capped at
 * what `maxNumSeqs` sequences of `maxModelLen` tokens could ever use (with a
 * sliding window, only its blocks: `maxBlocksPerSeq`).
 */
import { freemem } from 'node:os';
import { ConfigError } from '@weft/core';

export interface KVSizingOptions {
  /** Exact number of blocks per replica (tests, tiny pools). */
  numKvBlocks?: number;
  /** KV-cache bytes per rank. */
  kvCacheBytes?: number;
  /** Fraction of free host memory, shared by every rank of this host (default 0.3). */
  kvCacheMemoryFraction?: number;
}

export function numKvBlocks(
  opts: KVSizingOptions,
  ctx: { bytesPerBlock: number[]; blockSize: number; maxModelLen: number; maxNumSeqs: number; freeBytes?: number; maxBlocksPerSeq?: number },
): number {
  const cap = ctx.maxNumSeqs * (ctx.maxBlocksPerSeq ?? Math.ceil(ctx.maxModelLen / ctx.blockSize));
  if (opts.numKvBlocks !== undefined) {
    if (!Number.isInteger(opts.numKvBlocks) || opts.numKvBlocks < 1) throw new ConfigError(`numKvBlocks must be a positive integer, got ${opts.numKvBlocks}`);
    return opts.numKvBlocks;
  }
  const perBlock = Math.max(1, ...ctx.bytesPerBlock);
  let budget: number;
  if (opts.kvCacheBytes !== undefined) {
    if (!(opts.kvCacheBytes > 0)) throw new ConfigError(`kvCacheBytes must be positive, got ${opts.kvCacheBytes}`);
    budget = opts.kvCacheBytes;
  } else {
    const fraction = opts.kvCacheMemoryFraction ?? 0.3;
    if (!(fraction > 0 && fraction <= 1)) throw new ConfigError(`kvCacheMemoryFraction must be in (0, 1], got ${fraction}`);
    budget = ((ctx.freeBytes ?? freemem()) * fraction) / Math.max(1, ctx.bytesPerBlock.length);
  }
  const n = Math.min(cap, Math.floor(budget / perBlock));
  if (n < 1) {
    throw new ConfigError(`KV cache: a budget of ${budget} bytes per rank holds no block of ${perBlock} bytes (${ctx.blockSize} tokens); raise kvCacheBytes`);
  }
  return n;
}
