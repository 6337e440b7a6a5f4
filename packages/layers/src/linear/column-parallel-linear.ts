import type * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { divide } from '@weft/core';
import { expectCheckpointShape, type ShardId, type WeightLoader } from '../parameter.js';
import { LinearBase, type LinearOptions } from './linear-base.js';

export interface ColumnParallelOptions extends LinearOptions {
  tp: GroupCoordinator;
  /** All-gather the output so every rank holds `[T, outputSize]`. */
  gatherOutput?: boolean;
  /** For fused subclasses: how checkpoint tensors land in this rank's weight, and which shards complete it. */
  shardLoader?: { loader: WeightLoader; shardIds: ShardId[] };
}

/** Output dim split over tp: weight `[out/tp, in]`, rank r holds rows `[r·out/tp, (r+1)·out/tp)`. */
export class ColumnParallelLinear extends LinearBase {
  readonly tp: GroupCoordinator;
  readonly gatherOutput: boolean;

  constructor(opts: ColumnParallelOptions) {
    const per = divide(opts.outputSize, opts.tp.worldSize, `${opts.prefix} output size`);
    const loader = opts.shardLoader?.loader ?? narrowOutputLoader(opts.outputSize, per, opts.tp.rankInGroup);
    super(opts.prefix, opts.inputSize, per, opts.bias ?? false, loader, loader, opts.shardLoader?.shardIds);
    this.tp = opts.tp;
    this.gatherOutput = opts.gatherOutput ?? false;
  }

  async forward(x: tf.Tensor2D): Promise<tf.Tensor2D> {
    const y = this.matmul(x);
    if (!this.gatherOutput || this.tp.worldSize === 1) return y;
    const out = (await this.tp.allGather(y, -1)) as tf.Tensor2D;
    y.dispose();
    return out;
  }
}

/** Loads rank `rank`'s rows `[rank·per, (rank+1)·per)` of a checkpoint tensor with `total` rows, reading only those. */
export function narrowOutputLoader(total: number, per: number, rank: number): WeightLoader {
  return (param, weight) => {
    expectCheckpointShape(weight, [total, ...param.shape.slice(1)], param);
    param.set(weight.narrow(0, rank * per, per), weight.name);
  };
}
