import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import {
  Attention,
  getRope,
  QKVParallelLinear,
  RowParallelLinear,
  type AttentionMetadata,
  type KVCacheSpec,
  type PagedKVCache,
  type Parameter,
  type TokenMixer,
} from '@weft/layers';
import type { LlamaConfig } from './llama-config.js';

/** What the attention reads: any family's config with the common sizes and the dense attention fields (Mixtral, Qwen3-MoE too). */
export type LlamaAttentionConfig = Omit<LlamaConfig, 'family' | 'modelType'>;

/** Self-attention: fused qkv (column) → rotary → attention over this rank's heads → o_proj (row, all-reduce). */
export class LlamaAttention implements TokenMixer {
  readonly qkvProj: QKVParallelLinear;
  readonly oProj: RowParallelLinear;
  readonly rope: ReturnType<typeof getRope>;
  readonly attn: Attention;

  constructor(prefix: string, config: LlamaAttentionConfig, tp: GroupCoordinator) {
    this.qkvProj = new QKVParallelLinear({
      prefix: `${prefix}.qkv_proj`,
      hiddenSize: config.hiddenSize,
      headSize: config.headDim,
      totalNumHeads: config.numAttentionHeads,
      totalNumKvHeads: config.numKeyValueHeads,
      bias: config.attentionBias,
      tp,
    });
    this.oProj = new RowParallelLinear({
      prefix: `${prefix}.o_proj`,
      inputSize: config.numAttentionHeads * config.headDim,
      outputSize: config.hiddenSize,
      bias: config.attentionBias,
      tp,
    });
    this.rope = getRope({
      headSize: config.headDim,
      rotaryDim: config.headDim,
      maxPosition: config.maxPositionEmbeddings,
      base: config.rope.theta,
      isNeoxStyle: true,
      scaling: config.rope,
      invFreqDtype: config.dtype,
    });
    this.attn = new Attention({
      numHeads: this.qkvProj.numHeads,
      numKvHeads: this.qkvProj.numKvHeads,
      headDim: config.headDim,
      scale: config.headDim ** -0.5,
    });
  }

  get kvCacheSpec(): KVCacheSpec {
    return this.attn.kvCacheSpec;
  }

  parameters(): Parameter[] {
    return [...this.qkvProj.parameters(), ...this.oProj.parameters()];
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    this.rope.dispose();
  }

  async forward(positions: tf.Tensor1D, hidden: tf.Tensor2D, meta: AttentionMetadata, cache: PagedKVCache | null): Promise<tf.Tensor2D> {
    const qkv = await this.qkvProj.forward(hidden);
    const [q, k, v] = tf.tidy(() => {
      const { qSize, kvSize, numHeads, numKvHeads } = this.qkvProj;
      // Rotated straight out of the fused qkv (one kernel each on webgpu); v is a plain slice.
      return [
        this.rope.rotateColumns(positions, qkv, 0, numHeads),
        this.rope.rotateColumns(positions, qkv, qSize, numKvHeads),
        tf.slice(qkv, [0, qSize + kvSize], [-1, kvSize]) as tf.Tensor2D,
      ];
    });
    qkv.dispose();
    const out = await this.attn.forward(q!, k!, v!, meta, cache).finally(() => tf.dispose([q!, k!, v!]));
    const o = await this.oProj.forward(out);
    out.dispose();
    return o;
  }
}
