/**
 * What every linear layer shares: a weight `[outPerRank, inPerRank]` in the
 * checkpoint's (PyTorch) layout, an optional bias, and `x · Wᵀ + b`, the
 * weight's storage and matmul being its linear method's (LinearWeight).
 * Subclasses decide what is sharded and how checkpoint tensors land in it.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Parameter, type WeightLoader } from '../parameter.js';
import { ConfigError } from '@weft/core';
import type { PlanBuilder } from '../plan/builder.js';
import type { ActView } from '../plan/ops.js';
import { LinearWeight } from './linear-weight.js';

export interface LinearOptions {
  /** Parameter prefix, e.g. `model.layers.0.mlp.down_proj`. */
  prefix: string;
  inputSize: number;
  outputSize: number;
  bias?: boolean;
}

export abstract class LinearBase {
  readonly weight: LinearWeight;
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
    this.weight = new LinearWeight(`${prefix}.weight`, outPerRank, inPerRank, weightLoader, expectedShards);
    this.bias = withBias ? new Parameter(`${prefix}.bias`, [outPerRank], biasLoader, expectedShards) : null;
  }

  parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  /** `x [T, in] → [T, out]` on this rank's shard; `addBias` false skips the bias (row-parallel ranks ≠ 0). */
  protected matmul(x: tf.Tensor2D, addBias = true): tf.Tensor2D {
    return this.weight.apply(x, addBias ? this.bias?.tensor : null);
  }

  /** Records `out = x · Wᵀ (+ bias)` on this rank's shard (the weight's method decides the kernel). */
  record(b: PlanBuilder, x: ActView, out: ActView, addBias = true): void {
    if (x.width !== this.inPerRank || out.width !== this.outPerRank) {
      throw new ConfigError(`${this.prefix}: plan views [${x.width}] → [${out.width}] do not fit the weight [${this.outPerRank}, ${this.inPerRank}]`);
    }
    b.op({ kind: 'linear', x, out, weight: this.weight, bias: addBias ? this.bias : null, accumulate: false });
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}
