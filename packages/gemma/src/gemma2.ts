/**
 * Gemma 2 (vLLM's gemma2.py) for one rank: Llama's attention with Gemma's
 * options (query_pre_attn_scalar scale, attention-logit soft-capping, the
 * sliding window on alternate layers), a GELU-tanh gated MLP, and its own
 * decoder layer: (1 + w) RMSNorms before and after both attention and MLP.
 * Embeddings are scaled by √hidden rounded to the model's dtype (HF builds
 * the normalizer as a tensor of that dtype); the final logits are
 * soft-capped; the head is tied.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { bf16ToFloat32, float32ToBf16, float32ToFp16Bits, fp16BitsToFloat32, type Gemma2Config } from '@weft/core';
import {
  DecoderOnlyLM,
  mixersUnsupported,
  RMSNorm,
  whole,
  type ActView,
  type PlanBuilder,
  type AttentionMetadata,
  type ChannelMixer,
  type DecoderLayer,
  type PagedKVCache,
  type Parameter,
  type TokenMixer,
} from '@weft/layers';
import { LLAMA_STACKED_PARAMS, llamaLayer, type LlamaRankOptions } from '@weft/llama';

/** Gemma's RMSNorm multiplies by 1 + w. */
const GEMMA_NORM_OFFSET = 1;

/** input → attn → post-attention norm, + residual; pre-feedforward norm → MLP → post-feedforward norm (vLLM's fused-residual form). */
export class Gemma2DecoderLayer implements DecoderLayer {
  readonly inputLayernorm: RMSNorm;
  readonly postAttentionLayernorm: RMSNorm;
  readonly preFeedforwardLayernorm: RMSNorm;
  readonly postFeedforwardLayernorm: RMSNorm;

  constructor(
    prefix: string,
    hiddenSize: number,
    eps: number,
    readonly selfAttn: TokenMixer,
    readonly mlp: ChannelMixer,
  ) {
    const norm = (name: string) => new RMSNorm(`${prefix}.${name}`, hiddenSize, eps, GEMMA_NORM_OFFSET);
    this.inputLayernorm = norm('input_layernorm');
    this.postAttentionLayernorm = norm('post_attention_layernorm');
    this.preFeedforwardLayernorm = norm('pre_feedforward_layernorm');
    this.postFeedforwardLayernorm = norm('post_feedforward_layernorm');
  }

  parameters(): Parameter[] {
    return [
      this.inputLayernorm.weight,
      ...this.selfAttn.parameters(),
      this.postAttentionLayernorm.weight,
      this.preFeedforwardLayernorm.weight,
      ...this.mlp.parameters(),
      this.postFeedforwardLayernorm.weight,
    ];
  }

  async forward(
    positions: tf.Tensor1D,
    hidden: tf.Tensor2D,
    residual: tf.Tensor2D | null,
    meta: AttentionMetadata,
    cache: PagedKVCache | null,
  ): Promise<[tf.Tensor2D, tf.Tensor2D]> {
    const [normed, res] = this.inputLayernorm.forwardInput(hidden, residual);
    const attnOut = await this.selfAttn.forward(positions, normed, meta, cache);
    normed.dispose();
    const attnNormed = this.postAttentionLayernorm.forward(attnOut);
    attnOut.dispose();
    const [mlpIn, res2] = this.preFeedforwardLayernorm.forwardResidual(attnNormed, res);
    attnNormed.dispose();
    res.dispose();
    const mlpOut = await this.mlp.forward(mlpIn);
    mlpIn.dispose();
    const out = this.postFeedforwardLayernorm.forward(mlpOut);
    mlpOut.dispose();
    return [out, res2];
  }

  planUnsupported(): string | null {
    return mixersUnsupported(this.inputLayernorm.name.replace(/\.input_layernorm$/, ''), this.selfAttn, this.mlp);
  }

  record(b: PlanBuilder, hidden: ActView, residual: ActView, residualInit: boolean): ActView {
    const normed = whole(b.scratch('layer.normed', this.inputLayernorm.hiddenSize));
    this.inputLayernorm.record(b, hidden, normed, residual, residualInit);
    const attnOut = this.selfAttn.record!(b, normed);
    this.postAttentionLayernorm.record(b, attnOut, attnOut);
    this.preFeedforwardLayernorm.record(b, attnOut, normed, residual);
    const mlpOut = this.mlp.record!(b, normed);
    this.postFeedforwardLayernorm.record(b, mlpOut, mlpOut);
    return mlpOut;
  }

  dispose(): void {
    for (const n of [this.inputLayernorm, this.postAttentionLayernorm, this.preFeedforwardLayernorm, this.postFeedforwardLayernorm]) n.dispose();
    this.selfAttn.dispose();
    this.mlp.dispose();
  }
}

export class Gemma2ForCausalLM extends DecoderOnlyLM {
  constructor(config: Gemma2Config, state: ParallelState, opts: LlamaRankOptions = {}) {
    super(
      config,
      state,
      (i, prefix) => llamaLayer(config, state, i, prefix, opts),
      LLAMA_STACKED_PARAMS,
      {
        makeDecoderLayer: (prefix, attn, mlp) => new Gemma2DecoderLayer(prefix, config.hiddenSize, config.rmsNormEps, attn, mlp),
        normWeightOffset: GEMMA_NORM_OFFSET,
        embeddingMultiplier: roundToDtype(Math.sqrt(config.hiddenSize), config.dtype),
        finalLogitSoftcapping: config.finalLogitSoftcapping,
      },
    );
  }
}

/** `v` as the checkpoint's dtype holds it (HF: `torch.tensor(hidden_size ** 0.5, dtype=hidden_states.dtype)`). */
export function roundToDtype(v: number, dtype: string): number {
  if (dtype === 'bfloat16') return bf16ToFloat32(float32ToBf16(new Float32Array([v])))[0]!;
  if (dtype === 'float16') return fp16BitsToFloat32(float32ToFp16Bits(v));
  return Math.fround(v);
}
