/**
 * The SiLU-gated MLP of Llama, DeepSeek's dense layers and its shared experts:
 * gate|up (merged column) → SiLU(gate)·up → down (row). `reduceResults: false`
 * leaves the row-parallel partial sums for a later fused all-reduce (MoE).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { ConfigError } from '@weft/core';
import { MergedColumnParallelLinear } from './linear/merged-column-parallel-linear.js';
import { RowParallelLinear } from './linear/row-parallel-linear.js';
import { siluAndMulOp } from './kernels/index.js';
import type { Parameter } from './parameter.js';

export interface GatedMLPOptions {
  /** e.g. `model.layers.0.mlp` */
  prefix: string;
  hiddenSize: number;
  intermediateSize: number;
  tp: GroupCoordinator;
  bias?: boolean;
  /** Only silu is supported (Llama, DeepSeek). */
  hiddenAct?: string;
  reduceResults?: boolean;
}

export class GatedMLP {
  readonly gateUpProj: MergedColumnParallelLinear;
  readonly downProj: RowParallelLinear;

  constructor(opts: GatedMLPOptions) {
    const act = opts.hiddenAct ?? 'silu';
    if (act !== 'silu') throw new ConfigError(`${opts.prefix}: hidden_act '${act}' is not supported (only silu)`);
    this.gateUpProj = new MergedColumnParallelLinear({
      prefix: `${opts.prefix}.gate_up_proj`,
      inputSize: opts.hiddenSize,
      outputSizes: [opts.intermediateSize, opts.intermediateSize],
      bias: opts.bias,
      tp: opts.tp,
    });
    this.downProj = new RowParallelLinear({
      prefix: `${opts.prefix}.down_proj`,
      inputSize: opts.intermediateSize,
      outputSize: opts.hiddenSize,
      bias: opts.bias,
      tp: opts.tp,
      reduceResults: opts.reduceResults ?? true,
    });
  }

  parameters(): Parameter[] {
    return [...this.gateUpProj.parameters(), ...this.downProj.parameters()];
  }

  async forward(x: tf.Tensor2D): Promise<tf.Tensor2D> {
    const gateUp = await this.gateUpProj.forward(x);
    const act = siluAndMulOp(gateUp);
    gateUp.dispose();
    const out = await this.downProj.forward(act);
    act.dispose();
    return out;
  }

  dispose(): void {
    this.gateUpProj.dispose();
    this.downProj.dispose();
  }
}
