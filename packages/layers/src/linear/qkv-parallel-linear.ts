import type { GroupCoordinator } from '@weft/comm';
import { divide } from '@weft/core';
import { ColumnParallelLinear } from './column-parallel-linear.js';
import { fusedShardLoader } from './merged-column-parallel-linear.js';

export interface QKVParallelOptions {
  prefix: string;
  hiddenSize: number;
  headSize: number;
  totalNumHeads: number;
  totalNumKvHeads?: number;
  /** V head size when it differs from Q/K (default headSize). */
  vHeadSize?: number;
  tp: GroupCoordinator;
  bias?: boolean;
}

/**
 * Fused q|k|v projection. Query heads split over tp; when tp ≥ num_kv_heads each
 * rank holds one KV head, replicated tp/num_kv_heads times, and rank r loads KV
 * head r / replicas (vLLM `QKVParallelLinear`). Per-rank layout `[q | k | v]`.
 */
export class QKVParallelLinear extends ColumnParallelLinear {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly numKvHeadReplicas: number;
  readonly qSize: number;
  readonly kvSize: number;
  readonly vSize: number;

  constructor(opts: QKVParallelOptions) {
    const tpSize = opts.tp.worldSize;
    const tpRank = opts.tp.rankInGroup;
    const totalKv = opts.totalNumKvHeads ?? opts.totalNumHeads;
    const vHead = opts.vHeadSize ?? opts.headSize;
    const numHeads = divide(opts.totalNumHeads, tpSize, 'num_attention_heads');
    let numKvHeads: number;
    let replicas: number;
    if (tpSize >= totalKv) {
      numKvHeads = 1;
      replicas = divide(tpSize, totalKv, 'tp', 'num_key_value_heads');
    } else {
      numKvHeads = divide(totalKv, tpSize, 'num_key_value_heads');
      replicas = 1;
    }
    const kvRank = Math.floor(tpRank / replicas);
    const q = numHeads * opts.headSize;
    const k = numKvHeads * opts.headSize;
    const v = numKvHeads * vHead;
    const shards = [
      { id: 'q', size: opts.totalNumHeads * opts.headSize, per: q, srcOffset: tpRank * q, dstOffset: 0 },
      { id: 'k', size: totalKv * opts.headSize, per: k, srcOffset: kvRank * k, dstOffset: q },
      { id: 'v', size: totalKv * vHead, per: v, srcOffset: kvRank * v, dstOffset: q + k },
    ];
    super({
      prefix: opts.prefix,
      inputSize: opts.hiddenSize,
      // The per-rank output is q+k+v; the "total" only matters for the default loader, which is replaced.
      outputSize: (q + k + v) * tpSize,
      bias: opts.bias,
      tp: opts.tp,
      shardLoader: { loader: fusedShardLoader(shards), shardIds: ['q', 'k', 'v'] },
    });
    this.numHeads = numHeads;
    this.numKvHeads = numKvHeads;
    this.numKvHeadReplicas = replicas;
    this.qSize = q;
    this.kvSize = k;
    this.vSize = v;
  }
}
