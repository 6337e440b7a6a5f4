/**
 * What every linear layer shares: a weight `[outPerRank, inPerRank]` in the
 * checkpoint's (PyTorch) layout, kept transposed in memory, an optional bias,
 * and `x · Wᵀ + b`.
 * Subclasses decide what is sharded and how checkpoint tensors land in it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { linearOp } from '../kernels/index.js';
import { Parameter, type WeightLoader } from '../parameter.js';

export interface LinearOptions {
  /** Parameter prefix, e.g. `model.layers.0.mlp.down_proj`. */
  prefix: string;
  inputSize: number;
  outputSize: number;
  bias?: boolean;
}

export abstract class LinearBase {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  protected constructor(
    readonly prefix: string,
    readonly inPerRank: number,
    readonly outPerRank: number,
    withBias: boolean,
    weightLoader: WeightLoader,
    biasLoader: WeightLoader,
    expectedShards: readonly (string | number)[] = [],
  ) {
    this.weight = new Parameter(`${prefix}.weight`, [outPerRank, inPerRank], weightLoader, expectedShards, true);
    this.bias = withBias ? new Parameter(`${prefix}.bias`, [outPerRank], biasLoader, expectedShards) : null;
  }

  parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  /** `x [T, in] → [T, out]` on this rank's shard; `addBias` false skips the bias (row-parallel ranks ≠ 0). */
  protected matmul(x: tf.Tensor2D, addBias = true): tf.Tensor2D {
    // The weight is stored as [in, out] (see Parameter.storeTransposed).
    return linearOp(x, this.weight.tensor as tf.Tensor2D, addBias ? this.bias?.tensor : null);
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}
