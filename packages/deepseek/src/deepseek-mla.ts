/**
 * Multi-head latent attention (DeepSeek V2 / V3), heads split over tp:
 * q = q_b(norm(q_a(h))) or q_proj(h); kv_a_proj_with_mqa(h) = [latent | k_rope]
 * with one rope key head shared by all heads; k_nope|v = kv_b(norm(latent));
 * attention over [nope | rope] keys; o_proj row-parallel.
 *
 * The KV cache holds full per-head K and V (not the compressed latent).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { divide, type DeepseekConfig } from '@weft/core';
import {
  Attention,
  ColumnParallelLinear,
  getRope,
  ReplicatedLinear,
  RMSNorm,
  RowParallelLinear,
  type AttentionMetadata,
  type KVCache,
  type Parameter,
  type RopeScaling,
  type RotaryEmbedding,
  type TokenMixer,
} from '@weft/layers';

export class DeepseekMLA implements TokenMixer {
  readonly qAProj: ReplicatedLinear | null;
  readonly qALayernorm: RMSNorm | null;
  /** q_b_proj (with q_lora_rank) or q_proj (V2-Lite). */
  readonly qProj: ColumnParallelLinear;
  readonly kvAProjWithMqa: ReplicatedLinear;
  readonly kvALayernorm: RMSNorm;
  readonly kvBProj: ColumnParallelLinear;
  readonly oProj: RowParallelLinear;
  readonly rope: RotaryEmbedding;
  readonly attn: Attention;
  private readonly heads: number;

  constructor(prefix: string, private readonly c: DeepseekConfig, tp: GroupCoordinator) {
    const H = c.numAttentionHeads;
    this.heads = divide(H, tp.worldSize, 'num_attention_heads');
    const qkHead = c.qkNopeHeadDim + c.qkRopeHeadDim;
    if (c.qLoraRank !== null) {
      this.qAProj = new ReplicatedLinear({ prefix: `${prefix}.q_a_proj`, inputSize: c.hiddenSize, outputSize: c.qLoraRank, bias: c.attentionBias });
      this.qALayernorm = new RMSNorm(`${prefix}.q_a_layernorm`, c.qLoraRank, c.rmsNormEps);
      this.qProj = new ColumnParallelLinear({ prefix: `${prefix}.q_b_proj`, inputSize: c.qLoraRank, outputSize: H * qkHead, tp });
    } else {
      this.qAProj = null;
      this.qALayernorm = null;
      this.qProj = new ColumnParallelLinear({ prefix: `${prefix}.q_proj`, inputSize: c.hiddenSize, outputSize: H * qkHead, tp });
    }
    this.kvAProjWithMqa = new ReplicatedLinear({
      prefix: `${prefix}.kv_a_proj_with_mqa`,
      inputSize: c.hiddenSize,
      outputSize: c.kvLoraRank + c.qkRopeHeadDim,
      bias: c.attentionBias,
    });
    this.kvALayernorm = new RMSNorm(`${prefix}.kv_a_layernorm`, c.kvLoraRank, c.rmsNormEps);
    this.kvBProj = new ColumnParallelLinear({
      prefix: `${prefix}.kv_b_proj`,
      inputSize: c.kvLoraRank,
      outputSize: H * (c.qkNopeHeadDim + c.vHeadDim),
      tp,
    });
    this.oProj = new RowParallelLinear({ prefix: `${prefix}.o_proj`, inputSize: H * c.vHeadDim, outputSize: c.hiddenSize, bias: c.attentionBias, tp });
    this.rope = getRope({
      headSize: c.qkRopeHeadDim,
      rotaryDim: c.qkRopeHeadDim,
      maxPosition: c.maxPositionEmbeddings,
      base: c.rope.theta,
      isNeoxStyle: !c.ropeInterleave,
      scaling: c.rope as RopeScaling,
      invFreqDtype: c.dtype,
    });
    // Softmax scale × yarn mscale(factor, mscale_all_dim)², as transformers' V2 and V3 (and vLLM) do.
    const scaleFactor = this.rope.attentionScaleFactor;
    this.attn = new Attention({
      numHeads: this.heads,
      numKvHeads: this.heads,
      headDim: qkHead,
      vHeadDim: c.vHeadDim,
      scale: qkHead ** -0.5 * scaleFactor,
    });
  }

  parameters(): Parameter[] {
    return [
      ...(this.qAProj?.parameters() ?? []),
      ...(this.qALayernorm ? [this.qALayernorm.weight] : []),
      ...this.qProj.parameters(),
      ...this.kvAProjWithMqa.parameters(),
      this.kvALayernorm.weight,
      ...this.kvBProj.parameters(),
      ...this.oProj.parameters(),
    ];
  }

  async forward(positions: tf.Tensor1D, hidden: tf.Tensor2D, meta: AttentionMetadata, cache: KVCache | null): Promise<tf.Tensor2D> {
    const { qkNopeHeadDim: nope, qkRopeHeadDim: ropeDim, kvLoraRank, vHeadDim } = this.c;
    const T = hidden.shape[0];
    const Hl = this.heads;
    const qIn = this.qAProj ? tf.tidy(() => this.qALayernorm!.forward(this.qAProj!.forward(hidden))) : hidden;
    const q = await this.qProj.forward(qIn);
    if (qIn !== hidden) qIn.dispose();
    const kvA = this.kvAProjWithMqa.forward(hidden);
    const latent = tf.tidy(() => this.kvALayernorm.forward(tf.slice(kvA, [0, 0], [-1, kvLoraRank]) as tf.Tensor2D));
    const kv = await this.kvBProj.forward(latent);
    latent.dispose();
    const out = tf.tidy(() => {
      const q3 = tf.reshape(q, [T, Hl, nope + ropeDim]);
      const kv3 = tf.reshape(kv, [T, Hl, nope + vHeadDim]);
      const kPe = tf.reshape(tf.slice(kvA, [0, kvLoraRank], [-1, ropeDim]), [T, 1, ropeDim]) as tf.Tensor3D;
      const [qPe, kPeRot] = this.rope.forward(positions, tf.slice(q3, [0, 0, nope], [-1, -1, ropeDim]) as tf.Tensor3D, kPe);
      const query = tf.concat([tf.slice(q3, [0, 0, 0], [-1, -1, nope]), qPe], 2);
      // The single rope key head is shared by every query head.
      const key = tf.concat([tf.slice(kv3, [0, 0, 0], [-1, -1, nope]), tf.tile(kPeRot, [1, Hl, 1])], 2);
      const value = tf.slice(kv3, [0, 0, nope], [-1, -1, vHeadDim]);
      return this.attn.forward(
        tf.reshape(query, [T, -1]) as tf.Tensor2D,
        tf.reshape(key, [T, -1]) as tf.Tensor2D,
        tf.reshape(value, [T, -1]) as tf.Tensor2D,
        meta,
        cache,
      );
    });
    tf.dispose([q, kvA, kv]);
    const o = await this.oProj.forward(out);
    out.dispose();
    return o;
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    this.rope.dispose();
  }
}
