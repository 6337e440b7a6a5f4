import type * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { RMSNorm, type AttentionMetadata, type KVCache, type Parameter } from '@weft/layers';
import { LlamaAttention } from './llama-attention.js';
import type { LlamaConfig } from './llama-config.js';
import { LlamaMLP } from './llama-mlp.js';

/** Pre-norm block with vLLM's fused residual: norm(x + residual) carries the sum forward. */
export class LlamaDecoderLayer {
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: LlamaAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: LlamaMLP;

  constructor(prefix: string, config: LlamaConfig, tp: GroupCoordinator) {
    this.inputLayernorm = new RMSNorm(`${prefix}.input_layernorm`, config.hiddenSize, config.rmsNormEps);
    this.selfAttn = new LlamaAttention(`${prefix}.self_attn`, config, tp);
    this.postAttentionLayernorm = new RMSNorm(`${prefix}.post_attention_layernorm`, config.hiddenSize, config.rmsNormEps);
    this.mlp = new LlamaMLP(`${prefix}.mlp`, config.hiddenSize, config.intermediateSize, config.mlpBias, config.hiddenAct, tp);
  }

  parameters(): Parameter[] {
    return [
      this.inputLayernorm.weight,
      ...this.selfAttn.parameters(),
      this.postAttentionLayernorm.weight,
      ...this.mlp.parameters(),
    ];
  }

  /** Returns the layer output and the new residual; the caller owns (and disposes) its inputs. */
  async forward(
    positions: tf.Tensor1D,
    hidden: tf.Tensor2D,
    residual: tf.Tensor2D | null,
    meta: AttentionMetadata,
    cache: KVCache | null,
  ): Promise<[tf.Tensor2D, tf.Tensor2D]> {
    let normed: tf.Tensor2D;
    let res: tf.Tensor2D;
    if (residual === null) {
      normed = this.inputLayernorm.forward(hidden);
      res = hidden.clone();
    } else {
      [normed, res] = this.inputLayernorm.forwardResidual(hidden, residual);
    }
    const attnOut = await this.selfAttn.forward(positions, normed, meta, cache);
    normed.dispose();
    const [normed2, res2] = this.postAttentionLayernorm.forwardResidual(attnOut, res);
    attnOut.dispose();
    res.dispose();
    const out = await this.mlp.forward(normed2);
    normed2.dispose();
    return [out, res2];
  }
}
