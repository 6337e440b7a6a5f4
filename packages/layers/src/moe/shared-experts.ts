/**
 * DeepSeek's shared experts: one dense SiLU MLP of moe_intermediate_size ×
 * n_shared_experts that every token goes through, tensor-parallel over TP
 * (gate|up column-split, down row-split) and left unreduced so its partial
 * output joins the routed experts' before the MoE block's single all-reduce.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { MergedColumnParallelLinear } from '../linear/merged-column-parallel-linear.js';
import { RowParallelLinear } from '../linear/row-parallel-linear.js';
import type { Parameter } from '../parameter.js';

export interface SharedExpertsOptions {
  /** e.g. `model.layers.1.mlp.shared_experts` */
  prefix: string;
  hiddenSize: number;
  /** moe_intermediate_size × n_shared_experts */
  intermediateSize: number;
  tp: GroupCoordinator;
}

export class SharedExperts {
  readonly gateUpProj: MergedColumnParallelLinear;
  readonly downProj: RowParallelLinear;

  constructor(opts: SharedExpertsOptions) {
    this.gateUpProj = new MergedColumnParallelLinear({
      prefix: `${opts.prefix}.gate_up_proj`,
      inputSize: opts.hiddenSize,
      outputSizes: [opts.intermediateSize, opts.intermediateSize],
      tp: opts.tp,
    });
    this.downProj = new RowParallelLinear({
      prefix: `${opts.prefix}.down_proj`,
      inputSize: opts.intermediateSize,
      outputSize: opts.hiddenSize,
      tp: opts.tp,
      reduceResults: false,
    });
  }

  parameters(): Parameter[] {
    return [...this.gateUpProj.parameters(), ...this.downProj.parameters()];
  }

  /** This rank's partial output [T, H] (sum over TP ranks = the MLP's output). */
  async forward(x: tf.Tensor2D): Promise<tf.Tensor2D> {
    const gateUp = await this.gateUpProj.forward(x);
    const act = tf.tidy(() => {
      const [gate, up] = tf.split(gateUp, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
      return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor2D;
    });
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
