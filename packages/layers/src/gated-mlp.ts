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
import { whole, type PlanBuilder } from './plan/builder.js';
import type { ActView } from './plan/ops.js';

export interface GatedMLPOptions {
  /** e.g. `model.layers.0.mlp` */
  prefix: string;
  hiddenSize: number;
  intermediateSize: number;
  tp: GroupCoordinator;
  bias?: boolean;
  /** silu (Llama, DeepSeek, Qwen, Phi-3) or gelu_pytorch_tanh (Gemma 2). */
  hiddenAct?: string;
  reduceResults?: boolean;
}

export class GatedMLP {
  readonly gateUpProj: MergedColumnParallelLinear;
  readonly downProj: RowParallelLinear;
  readonly hiddenAct: 'silu' | 'gelu_pytorch_tanh';

  constructor(opts: GatedMLPOptions) {
    const act = opts.hiddenAct ?? 'silu';
    if (act !== 'silu' && act !== 'gelu_pytorch_tanh') throw new ConfigError(`${opts.prefix}: hidden_act '${act}' is not supported (silu, gelu_pytorch_tanh)`);
    this.hiddenAct = act;
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
    const act = this.hiddenAct === 'silu' ? siluAndMulOp(gateUp) : geluTanhAndMul(gateUp);
    gateUp.dispose();
    const out = await this.downProj.forward(act);
    act.dispose();
    return out;
  }

  /** Records gate|up → act·up → down into a `key`-named scratch (`mlp.out` by default) and returns it. */
  record(b: PlanBuilder, x: ActView, key = 'mlp'): ActView {
    const gateUp = b.scratch(`${key}.gate_up`, this.gateUpProj.outPerRank);
    this.gateUpProj.record(b, x, whole(gateUp));
    const act = b.scratch(`${key}.act`, this.downProj.inPerRank);
    b.op({ kind: 'gatedAct', act: this.hiddenAct === 'silu' ? 'silu' : 'gelu_tanh', x: whole(gateUp), out: whole(act) });
    const out = b.scratch(`${key}.out`, this.downProj.outPerRank);
    this.downProj.record(b, whole(act), whole(out));
    return whole(out);
  }

  dispose(): void {
    this.gateUpProj.dispose();
    this.downProj.dispose();
  }
}

/** `gate|up [T, 2I]` → GELU-tanh(gate) · up, as torch's `gelu(approximate='tanh')`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanhAndMul(gateUp: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const half = gateUp.shape[1] / 2;
    const [x, up] = tf.split(gateUp, [half, half], 1) as [tf.Tensor2D, tf.Tensor2D];
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.mul(x, tf.mul(x, x)))));
    const gelu = tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    return tf.mul(gelu, up) as tf.Tensor2D;
  });
}
