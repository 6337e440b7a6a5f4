import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { divide } from '@weft/core';
import { defaultWeightLoader, expectCheckpointShape, type WeightLoader } from '../parameter.js';
import { view } from '../plan/builder.js';
import type { PlanBuilder } from '../plan/builder.js';
import type { ActView } from '../plan/ops.js';
import { LinearBase, type LinearOptions } from './linear-base.js';

export interface RowParallelOptions extends LinearOptions {
  tp: GroupCoordinator;
  /** The input already holds this rank's slice of the last dim (output of a column-parallel layer). */
  inputIsParallel?: boolean;
  /** All-reduce the partial sums; false leaves them for a later fused reduction (MoE). */
  reduceResults?: boolean;
}

/** Input dim split over tp: weight `[out, in/tp]`; partial products are all-reduced; the bias is added once. */
export class RowParallelLinear extends LinearBase {
  readonly tp: GroupCoordinator;
  readonly inputIsParallel: boolean;
  readonly reduceResults: boolean;

  constructor(opts: RowParallelOptions) {
    const per = divide(opts.inputSize, opts.tp.worldSize, `${opts.prefix} input size`);
    const rank = opts.tp.rankInGroup;
    const weightLoader: WeightLoader = (param, weight) => {
      expectCheckpointShape(weight, [opts.outputSize, opts.inputSize], param);
      param.set(weight.narrow(1, rank * per, per), weight.name);
    };
    super(opts.prefix, per, opts.outputSize, opts.bias ?? false, weightLoader, defaultWeightLoader);
    this.tp = opts.tp;
    this.inputIsParallel = opts.inputIsParallel ?? true;
    this.reduceResults = opts.reduceResults ?? true;
  }

  async forward(x: tf.Tensor2D): Promise<tf.Tensor2D> {
    const tpSize = this.tp.worldSize;
    const local = this.inputIsParallel || tpSize === 1
      ? x
      : tf.slice(x, [0, this.tp.rankInGroup * this.inPerRank], [-1, this.inPerRank]);
    // Partial sums are reduced now or later (MoE): only rank 0 adds the bias, or it would count tp times.
    const addBias = this.tp.rankInGroup === 0;
    const partial = this.matmul(local, addBias);
    if (local !== x) local.dispose();
    if (!this.reduceResults || tpSize === 1) return partial;
    const out = (await this.tp.allReduce(partial)) as tf.Tensor2D;
    partial.dispose();
    return out;
  }

  /** Records the partial product (bias on rank 0 only) and, with reduceResults, its all-reduce: a plan boundary. */
  override record(b: PlanBuilder, x: ActView, out: ActView): void {
    const tpSize = this.tp.worldSize;
    const local = this.inputIsParallel || tpSize === 1 ? x : view(x.act, x.col + this.tp.rankInGroup * this.inPerRank, this.inPerRank);
    super.record(b, local, out, this.tp.rankInGroup === 0);
    if (this.reduceResults) b.allReduce(out, this.tp);
  }
}
