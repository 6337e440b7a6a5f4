import type { GroupCoordinator } from '@weft/comm';
import { divide } from '@weft/core';
import { expectCheckpointShape, type ShardId, type WeightLoader } from '../parameter.js';
import { ColumnParallelLinear } from './column-parallel-linear.js';

export interface MergedColumnParallelOptions {
  prefix: string;
  inputSize: number;
  /** e.g. [intermediate, intermediate] for gate|up; each divides by tp. */
  outputSizes: number[];
  tp: GroupCoordinator;
  bias?: boolean;
  gatherOutput?: boolean;
}

/**
 * Several column-parallel outputs fused in one matmul (gate|up). Shard i of
 * rank r lands at offset `sum(outputSizes[:i]) / tp` of the rank's weight and is
 * read from rows `r · outputSizes[i] / tp` of checkpoint tensor i. A checkpoint
 * that already holds the fused tensor (no shard id) is split the same way.
 */
export class MergedColumnParallelLinear extends ColumnParallelLinear {
  constructor(opts: MergedColumnParallelOptions) {
    const tpSize = opts.tp.worldSize;
    const pers = opts.outputSizes.map((s, i) => divide(s, tpSize, `${opts.prefix} output size ${i}`));
    const shards = opts.outputSizes.map((size, i) => ({
      id: i,
      size,
      per: pers[i]!,
      srcOffset: opts.tp.rankInGroup * pers[i]!,
      dstOffset: pers.slice(0, i).reduce((a, b) => a + b, 0),
    }));
    super({
      ...opts,
      outputSize: opts.outputSizes.reduce((a, b) => a + b, 0),
      shardLoader: { loader: fusedShardLoader(shards), shardIds: shards.map((s) => s.id) },
    });
  }
}

export interface FusedShard {
  id: ShardId;
  /** Rows of this shard in its own checkpoint tensor. */
  size: number;
  /** Rows this rank holds. */
  per: number;
  /** First row this rank reads from the shard's checkpoint tensor. */
  srcOffset: number;
  /** Where those rows go in this rank's fused parameter. */
  dstOffset: number;
}

/**
 * Loader for fused parameters (qkv, gate|up). With a shard id, the handle is
 * that shard's own checkpoint tensor; without one, it is the already-fused tensor
 * (shards concatenated in order) and every shard is taken from it.
 */
export function fusedShardLoader(shards: FusedShard[]): WeightLoader {
  return (param, weight, shardId) => {
    const rest = param.shape.slice(1);
    if (shardId === undefined) {
      const total = shards.reduce((a, s) => a + s.size, 0);
      expectCheckpointShape(weight, [total, ...rest], param);
      let base = 0;
      for (const s of shards) {
        param.setSlice(weight.narrow(0, base + s.srcOffset, s.per), 0, s.dstOffset, weight.name, s.id);
        base += s.size;
      }
      return;
    }
    const s = shards.find((x) => x.id === shardId);
    if (!s) throw new Error(`${param.name}: unknown shard '${String(shardId)}' (have ${shards.map((x) => x.id).join(', ')})`);
    expectCheckpointShape(weight, [s.size, ...rest], param);
    param.setSlice(weight.narrow(0, s.srcOffset, s.per), 0, s.dstOffset, weight.name, s.id);
  };
}

