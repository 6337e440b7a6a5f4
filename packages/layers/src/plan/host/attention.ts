/**
 * The host executor's `attention` op: the step's K/V rows into the layer's
 * paged cache, then causal attention per sequence over its block table, in
 * one @weft/cpu-kernels call (native; the portable path without the addon).
 */
import { WeftError } from '@weft/core';
import type { HostOpImpl } from './context.js';

export const hostAttention: HostOpImpl<'attention'> = (op, up) => {
  const { numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv } = op;
  if (op.q.width !== H * D || op.k.width !== Hk * D || (op.v ? op.v.width !== Hk * Dv : Dv > D) || op.out.width !== H * Dv || op.valueIsKeyPrefix !== (op.v === null)) {
    throw new WeftError(`plan attention (cache ${op.cacheIndex}): views q ${op.q.width}, k ${op.k.width}, v ${op.v?.width ?? '-'}, out ${op.out.width} do not fit ${H} heads × ${D} / ${Hk} KV heads × ${Dv}`);
  }
  return (s) => {
    const cache = s.cache(op.cacheIndex);
    up.kernels.attention({
      q: s.view(op.q),
      k: s.view(op.k),
      v: op.v ? s.view(op.v) : null,
      out: s.view(op.out),
      kCache: cache.k,
      vCache: cache.v,
      seqs: s.seqTable,
      tables: s.blockTables,
      rows: s.tokens,
      numHeads: H,
      numKvHeads: Hk,
      headDim: D,
      vHeadDim: Dv,
      blockSize: s.input.blockSize,
      numBlocks: s.numBlocks,
      slidingWindow: op.slidingWindow ?? 0,
      scale: op.scale,
      softCap: op.logitsSoftCap ?? 0,
    });
  };
};
