import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { MergedColumnParallelLinear, RowParallelLinear, type Parameter } from '@weft/layers';
import { ConfigError } from '@weft/core';

/** gate|up (merged column) → SiLU(gate)·up → down (row, all-reduce). */
export class LlamaMLP {
  readonly gateUpProj: MergedColumnParallelLinear;
  readonly downProj: RowParallelLinear;

  constructor(prefix: string, hiddenSize: number, intermediateSize: number, bias: boolean, hiddenAct: string, tp: GroupCoordinator) {
    if (hiddenAct !== 'silu') throw new ConfigError(`hidden_act '${hiddenAct}' is not supported (only silu)`);
    this.gateUpProj = new MergedColumnParallelLinear({
      prefix: `${prefix}.gate_up_proj`,
      inputSize: hiddenSize,
      outputSizes: [intermediateSize, intermediateSize],
      bias,
      tp,
    });
    this.downProj = new RowParallelLinear({ prefix: `${prefix}.down_proj`, inputSize: intermediateSize, outputSize: hiddenSize, bias, tp });
  }

  parameters(): Parameter[] {
    return [...this.gateUpProj.parameters(), ...this.downProj.parameters()];
  }

  async forward(x: tf.Tensor2D): Promise<tf.Tensor2D> {
    const gateUp = await this.gateUpProj.forward(x);
    const act = tf.tidy(() => {
      const [gate, up] = tf.split(gateUp, 2, -1);
      return tf.mul(tf.mul(gate!, tf.sigmoid(gate!)), up!) as tf.Tensor2D;
    });
    gateUp.dispose();
    const out = await this.downProj.forward(act);
    act.dispose();
    return out;
  }
}
