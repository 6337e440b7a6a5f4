/**
 * RMSNorm as Hugging Face's LlamaRMSNorm / DeepseekV3RMSNorm computes it:
 * `weight * (x * rsqrt(mean(x², -1) + eps))`, in fp32. The fused residual
 * form is vLLM's `forward(x, residual)`: the sum is normalised and also handed
 * back as the next residual, so a decoder layer never adds twice.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '@weft/core';
import { rmsNormOp } from './kernels/index.js';
import { checkShape, Parameter } from './parameter.js';
import type { PlanBuilder } from './plan/builder.js';
import type { ActView } from './plan/ops.js';

export class RMSNorm {
  readonly weight: Parameter;

  constructor(
    /** Module prefix, e.g. `model.layers.0.input_layernorm`; the weight is `${name}.weight`. */
    readonly name: string,
    readonly hiddenSize: number,
    readonly eps = 1e-6,
    /** Gemma's norms multiply by `1 + w`: the checkpoint's w is loaded plus this (in fp32, as HF computes it). */
    readonly weightOffset = 0,
  ) {
    if (!Number.isInteger(hiddenSize) || hiddenSize <= 0) {
      throw new ConfigError(`${name}: RMSNorm hidden size must be a positive integer, got ${hiddenSize}`);
    }
    // Replicated on every rank: the norm sees the full hidden size.
    this.weight =
      weightOffset === 0
        ? new Parameter(`${name}.weight`, [hiddenSize])
        : new Parameter(`${name}.weight`, [hiddenSize], (param, w) => {
            checkShape(param, w.shape, w.name);
            const host = w.read();
            param.set({ ...host, data: Float32Array.from(host.data, (v) => v + weightOffset) }, w.name);
          });
  }

  parameters(): Parameter[] {
    return [this.weight];
  }

  /** `x [T, hidden] → [T, hidden]`. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    this.checkInput(x);
    return rmsNormOp(x, this.weight.tensor, this.eps);
  }

  /** `(x, residual) → [norm(x + residual), x + residual]`. */
  forwardResidual(x: tf.Tensor2D, residual: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D] {
    if (x.shape[0] !== residual.shape[0] || x.shape[1] !== residual.shape[1]) {
      throw new ConfigError(`${this.name}: residual shape ${JSON.stringify(residual.shape)} does not match input ${JSON.stringify(x.shape)}`);
    }
    return tf.tidy(() => {
      const sum = tf.add(x, residual) as tf.Tensor2D;
      return [this.forward(sum), sum];
    });
  }

  /** A decoder layer's input norm: `forwardResidual`, or in the first layer (no residual yet) `[norm(x), x]`. */
  forwardInput(x: tf.Tensor2D, residual: tf.Tensor2D | null): [tf.Tensor2D, tf.Tensor2D] {
    return residual === null ? [this.forward(x), x.clone()] : this.forwardResidual(x, residual);
  }

  /**
   * Records this norm: `out = norm(x)` over groups of hiddenSize columns (a whole row, or each head of a
   * wider view: Qwen3's q/k norm); with `residual`, first `residual ← x + residual` (`residualInit`:
   * `residual ← x`) and the norm of the new residual.
   */
  record(b: PlanBuilder, x: ActView, out: ActView, residual: ActView | null = null, residualInit = false): void {
    if (x.width % this.hiddenSize !== 0 || out.width !== x.width || (residual && residual.width !== x.width)) {
      throw new ConfigError(`${this.name}: plan views of width ${x.width} / ${out.width} do not fit RMSNorm(${this.hiddenSize})`);
    }
    b.op({ kind: 'rmsNorm', x, out, weight: this.weight, eps: this.eps, weightOffset: 0, groupSize: this.hiddenSize, residual, residualInit });
  }

  dispose(): void {
    this.weight.dispose();
  }

  private checkInput(x: tf.Tensor): void {
    if (x.rank !== 2 || x.shape[1] !== this.hiddenSize) {
      throw new ConfigError(`${this.name}: expected input [T, ${this.hiddenSize}], got ${JSON.stringify(x.shape)}`);
    }
  }
}
