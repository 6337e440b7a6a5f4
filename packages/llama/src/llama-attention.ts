import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { ConfigError, layerSlidingWindow } from '@weft/core';
import {
  Attention,
  getRope,
  positionsEnd,
  QKVParallelLinear,
  RMSNorm,
  RowParallelLinear,
  type AttentionMetadata,
  type KVCacheSpec,
  type PagedKVCache,
  type Parameter,
  type TokenMixer,
  type ActView,
  type PlanBuilder,
  view,
  whole,
} from '@weft/layers';
import type { LlamaConfig } from './llama-config.js';

/**
 * What the attention reads: any family's config with the common sizes and the
 * dense attention fields (Llama, Mistral, Qwen2/3, Phi-3, Gemma 2; Mixtral and
 * Qwen3-MoE too).
 */
export type LlamaAttentionConfig = Omit<LlamaConfig, 'family' | 'modelType'>;

/**
 * Self-attention: fused qkv (column, biases optional) → [per-head q/k RMSNorm,
 * Qwen3] → rotary → attention over this rank's heads (its layer's sliding
 * window, soft-capping and scale) → o_proj (row, all-reduce).
 */
export class LlamaAttention implements TokenMixer {
  readonly qkvProj: QKVParallelLinear;
  readonly oProj: RowParallelLinear;
  readonly rope: ReturnType<typeof getRope>;
  readonly attn: Attention;
  /** Qwen3's `q_norm` / `k_norm`: RMSNorm over each head's head_dim, before rotary. */
  readonly qNorm: RMSNorm | null;
  readonly kNorm: RMSNorm | null;

  /**
   * `layer`: the decoder layer's index, for configs whose window differs by layer. `maxModelLen`: the
   * engine's limit, when smaller than max_position_embeddings the rotary table stops there.
   */
  constructor(prefix: string, config: LlamaAttentionConfig, tp: GroupCoordinator, layer?: number, maxModelLen?: number) {
    const D = config.headDim;
    this.qkvProj = new QKVParallelLinear({
      prefix: `${prefix}.qkv_proj`,
      hiddenSize: config.hiddenSize,
      headSize: D,
      totalNumHeads: config.numAttentionHeads,
      totalNumKvHeads: config.numKeyValueHeads,
      bias: config.qkvBias,
      tp,
    });
    this.oProj = new RowParallelLinear({
      prefix: `${prefix}.o_proj`,
      inputSize: config.numAttentionHeads * D,
      outputSize: config.hiddenSize,
      bias: config.oBias,
      tp,
    });
    this.qNorm = config.qkNorm ? new RMSNorm(`${prefix}.q_norm`, D, config.rmsNormEps) : null;
    this.kNorm = config.qkNorm ? new RMSNorm(`${prefix}.k_norm`, D, config.rmsNormEps) : null;
    const partial = config.rope.partialRotaryFactor ?? 1;
    this.rope = getRope({
      headSize: D,
      rotaryDim: Math.floor(D * partial),
      maxPosition: ropeTableLength(config, maxModelLen),
      base: config.rope.theta,
      isNeoxStyle: true,
      scaling: config.rope,
      invFreqDtype: config.dtype,
    });
    if (layer === undefined && config.slidingWindow !== null && config.slidingLayers.kind !== 'all') {
      throw new ConfigError(`${prefix}: this config's sliding window differs by layer (${config.slidingLayers.kind}); LlamaAttention needs the layer index`);
    }
    this.attn = new Attention({
      numHeads: this.qkvProj.numHeads,
      numKvHeads: this.qkvProj.numKvHeads,
      headDim: D,
      scale: config.attentionScale,
      slidingWindow: layerSlidingWindow(config, layer ?? 0),
      logitsSoftCap: config.attnLogitSoftcapping,
    });
  }

  get kvCacheSpec(): KVCacheSpec {
    return this.attn.kvCacheSpec;
  }

  parameters(): Parameter[] {
    return [...this.qkvProj.parameters(), ...(this.qNorm?.parameters() ?? []), ...(this.kNorm?.parameters() ?? []), ...this.oProj.parameters()];
  }

  dispose(): void {
    this.qkvProj.dispose();
    this.oProj.dispose();
    this.qNorm?.dispose();
    this.kNorm?.dispose();
    this.rope.dispose();
  }

  async forward(positions: tf.Tensor1D, hidden: tf.Tensor2D, meta: AttentionMetadata, cache: PagedKVCache | null): Promise<tf.Tensor2D> {
    this.rope.reserve(positionsEnd(meta));
    const qkv = await this.qkvProj.forward(hidden);
    const [q, k, v] = tf.tidy(() => {
      const { qSize, kvSize, numHeads, numKvHeads } = this.qkvProj;
      if (this.qNorm && this.kNorm) {
        // Per-head norms first: rotary then runs on the normed q and k.
        const qn = this.headNorm(this.qNorm, tf.slice(qkv, [0, 0], [-1, qSize]) as tf.Tensor2D, numHeads);
        const kn = this.headNorm(this.kNorm, tf.slice(qkv, [0, qSize], [-1, kvSize]) as tf.Tensor2D, numKvHeads);
        return [this.rope.rotateColumns(positions, qn, 0, numHeads), this.rope.rotateColumns(positions, kn, 0, numKvHeads), tf.slice(qkv, [0, qSize + kvSize], [-1, kvSize]) as tf.Tensor2D];
      }
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

  /** Records the same work: qkv → [q/k head norms] → rotary in place → paged attention → o_proj. */
  record(b: PlanBuilder, hidden: ActView): ActView {
    const { qSize, kvSize, numHeads, numKvHeads } = this.qkvProj;
    const qkv = b.scratch('attn.qkv', qSize + 2 * kvSize);
    this.qkvProj.record(b, hidden, whole(qkv));
    const q = view(qkv, 0, qSize);
    const k = view(qkv, qSize, kvSize);
    if (this.qNorm && this.kNorm) {
      this.qNorm.record(b, q, q);
      this.kNorm.record(b, k, k);
    }
    b.op({ kind: 'rotary', x: q, heads: numHeads, rope: this.rope });
    b.op({ kind: 'rotary', x: k, heads: numKvHeads, rope: this.rope });
    const ctx = b.scratch('attn.context', numHeads * this.attn.vHeadDim);
    this.attn.record(b, q, k, view(qkv, qSize + kvSize, kvSize), whole(ctx));
    const o = b.scratch('attn.out', this.oProj.outPerRank);
    this.oProj.record(b, whole(ctx), whole(o));
    return whole(o);
  }

  /** `[T, heads·D]` → RMSNorm over each head's D → `[T, heads·D]`. */
  private headNorm(norm: RMSNorm, x: tf.Tensor2D, heads: number): tf.Tensor2D {
    const T = x.shape[0];
    const D = x.shape[1] / heads;
    return tf.reshape(norm.forward(tf.reshape(x, [T * heads, D]) as tf.Tensor2D), [T, heads * D]) as tf.Tensor2D;
  }
}

/**
 * Positions the rotary cos/sin table covers: max_position_embeddings, or the
 * engine's maxModelLen when smaller — positions past it never run, and a
 * table of 2e7 positions is gigabytes per rank. Dynamic NTK keeps the config's
 * (its frequencies are computed against it).
 */
export function ropeTableLength(config: Pick<LlamaAttentionConfig, 'maxPositionEmbeddings' | 'rope'>, maxModelLen?: number): number {
  if (maxModelLen === undefined || config.rope.type === 'dynamic') return config.maxPositionEmbeddings;
  return Math.min(config.maxPositionEmbeddings, maxModelLen);
}
