/**
 * The skeleton every decoder-only model shares, for one rank: the layers of
 * its pipeline stage (vLLM's get_pp_indices), each a pre-norm block with the
 * fused residual; the first stage embeds, the last norms and computes logits;
 * stages in between pass `{hidden_states, residual}` along the PP group.
 * Models supply the attention and MLP of each layer (Llama, DeepSeek).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { ConfigError, getPpIndices } from '@weft/core';
import type { AttentionMetadata } from './attention-metadata.js';
import type { CausalLMRank, ForwardInput, IntermediateTensors } from './engine/causal-lm.js';
import { traced } from './engine/tracer.js';
import type { KVCacheSpec, PagedKVCache } from './paged-kv-cache.js';
import type { Parameter } from './parameter.js';
import { RMSNorm } from './rms-norm.js';
import { ParallelLMHead, VocabParallelEmbedding } from './vocab-parallel-embedding.js';
import type { StackedParamMapping } from './weight-loading.js';
import { PlanBuilder, whole, type DevicePlan } from './plan/builder.js';
import type { ActView, PlanAct } from './plan/ops.js';

/** Attention of one layer: hidden → hidden, writing the step's K/V into its paged cache and reading its context back. */
export interface TokenMixer {
  /** What the layer caches per token on this rank. */
  readonly kvCacheSpec: KVCacheSpec;
  forward(positions: tf.Tensor1D, hidden: tf.Tensor2D, meta: AttentionMetadata, cache: PagedKVCache | null): Promise<tf.Tensor2D>;
  /** Records the same work into a device plan (absent: this mixer has no plan yet); returns the output view. */
  record?(b: PlanBuilder, hidden: ActView): ActView;
  parameters(): Parameter[];
  dispose(): void;
}

/** MLP (dense or MoE) of one layer. */
export interface ChannelMixer {
  forward(x: tf.Tensor2D): Promise<tf.Tensor2D>;
  /** Records the same work into a device plan (absent: no plan yet); returns the output view. */
  record?(b: PlanBuilder, x: ActView): ActView;
  /** Why `record` cannot run on this rank's layout (FusedMoE: EP across DP replicas), or null. */
  planUnsupported?(): string | null;
  parameters(): Parameter[];
  /** Checkpoint tensors of this block held by other ranks (experts under EP). */
  isElsewhere?(name: string): boolean;
  dispose(): void;
}

/** One decoder layer: its attention, its MLP, and how they meet the residual stream. */
export interface DecoderLayer {
  readonly selfAttn: TokenMixer;
  readonly mlp: ChannelMixer;
  parameters(): Parameter[];
  /** Returns the layer output and the new residual; the caller owns (and disposes) its inputs. */
  forward(
    positions: tf.Tensor1D,
    hidden: tf.Tensor2D,
    residual: tf.Tensor2D | null,
    meta: AttentionMetadata,
    cache: PagedKVCache | null,
  ): Promise<[tf.Tensor2D, tf.Tensor2D]>;
  /**
   * Records the layer: `hidden` is the previous layer's output, `residual` the stream it updates in place
   * (`residualInit`: the first layer of the model, whose residual starts as its input). Returns the
   * layer's output view. Null: this layer (its attention or MLP) has no plan yet — the reason.
   */
  record?(b: PlanBuilder, hidden: ActView, residual: ActView, residualInit: boolean): ActView;
  /** Why `record` cannot run (a mixer without a plan), or null. */
  planUnsupported?(): string | null;
  dispose(): void;
}

/** Why a layer's mixers cannot record a plan, or null. */
export function mixersUnsupported(prefix: string, selfAttn: TokenMixer, mlp: ChannelMixer): string | null {
  if (!selfAttn.record) return `${prefix}: ${selfAttn.constructor.name} has no device plan`;
  if (!mlp.record) return `${prefix}: ${mlp.constructor.name} has no device plan`;
  return mlp.planUnsupported?.() ?? null;
}

export class PreNormDecoderLayer implements DecoderLayer {
  readonly inputLayernorm: RMSNorm;
  readonly postAttentionLayernorm: RMSNorm;

  constructor(
    prefix: string,
    hiddenSize: number,
    eps: number,
    readonly selfAttn: TokenMixer,
    readonly mlp: ChannelMixer,
  ) {
    this.inputLayernorm = new RMSNorm(`${prefix}.input_layernorm`, hiddenSize, eps);
    this.postAttentionLayernorm = new RMSNorm(`${prefix}.post_attention_layernorm`, hiddenSize, eps);
  }

  parameters(): Parameter[] {
    return [this.inputLayernorm.weight, ...this.selfAttn.parameters(), this.postAttentionLayernorm.weight, ...this.mlp.parameters()];
  }

  /** Returns the layer output and the new residual; the caller owns (and disposes) its inputs. */
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
    const [normed2, res2] = this.postAttentionLayernorm.forwardResidual(attnOut, res);
    attnOut.dispose();
    res.dispose();
    const out = await this.mlp.forward(normed2);
    normed2.dispose();
    return [out, res2];
  }

  planUnsupported(): string | null {
    return mixersUnsupported(this.inputLayernorm.name.replace(/\.input_layernorm$/, ''), this.selfAttn, this.mlp);
  }

  record(b: PlanBuilder, hidden: ActView, residual: ActView, residualInit: boolean): ActView {
    const normed = whole(b.scratch('layer.normed', this.inputLayernorm.hiddenSize));
    this.inputLayernorm.record(b, hidden, normed, residual, residualInit);
    const attnOut = this.selfAttn.record!(b, normed);
    this.postAttentionLayernorm.record(b, attnOut, normed, residual);
    return this.mlp.record!(b, normed);
  }

  dispose(): void {
    this.inputLayernorm.dispose();
    this.postAttentionLayernorm.dispose();
    this.selfAttn.dispose();
    this.mlp.dispose();
  }
}

export interface DecoderOnlyConfig {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
}

export type LayerFactory = (index: number, prefix: string) => { selfAttn: TokenMixer; mlp: ChannelMixer };

/** What differs from Llama's skeleton (Gemma 2's). */
export interface DecoderOnlyOptions {
  /** Builds each layer around its attention and MLP (default: Llama's `PreNormDecoderLayer`). */
  makeDecoderLayer?: (prefix: string, selfAttn: TokenMixer, mlp: ChannelMixer) => DecoderLayer;
  /** The final norm multiplies by `1 + w` (Gemma): see `RMSNorm`'s weightOffset. */
  normWeightOffset?: number;
  /** The first stage scales embeddings by this (Gemma: √hidden, rounded to the model's dtype). */
  embeddingMultiplier?: number;
  /** logits = cap · tanh(logits / cap) (Gemma 2's final_logit_softcapping). */
  finalLogitSoftcapping?: number | null;
}

export class DecoderOnlyLM implements CausalLMRank {
  readonly startLayer: number;
  readonly endLayer: number;
  readonly isFirstStage: boolean;
  readonly isLastStage: boolean;
  readonly embedTokens: VocabParallelEmbedding | null;
  readonly layers: DecoderLayer[] = [];
  readonly norm: RMSNorm | null;
  readonly lmHead: ParallelLMHead | null;
  /** One paged cache per layer of this stage, bound by the model runner (which owns and frees them). */
  private caches: PagedKVCache[] | null = null;

  constructor(
    readonly config: DecoderOnlyConfig,
    readonly state: ParallelState,
    makeLayer: LayerFactory,
    readonly stackedParams: StackedParamMapping[],
    private readonly options: DecoderOnlyOptions = {},
  ) {
    const pp = state.pp;
    [this.startLayer, this.endLayer] = getPpIndices(config.numHiddenLayers, pp.rankInGroup, pp.worldSize, state.config.ppPartition);
    this.isFirstStage = pp.isFirstRank;
    this.isLastStage = pp.isLastRank;
    const tp = state.tp;
    const vocab = { numEmbeddings: config.vocabSize, embeddingDim: config.hiddenSize, tp };
    // With tied weights the last stage needs the embedding too (it is the LM head).
    const needEmbed = this.isFirstStage || (this.isLastStage && config.tieWordEmbeddings);
    this.embedTokens = needEmbed ? new VocabParallelEmbedding({ ...vocab, prefix: 'model.embed_tokens' }) : null;
    for (let i = this.startLayer; i < this.endLayer; i++) {
      const prefix = `model.layers.${i}`;
      const { selfAttn, mlp } = makeLayer(i, prefix);
      const make = options.makeDecoderLayer ?? ((p, a, m) => new PreNormDecoderLayer(p, config.hiddenSize, config.rmsNormEps, a, m));
      this.layers.push(make(prefix, selfAttn, mlp));
    }
    this.norm = this.isLastStage ? new RMSNorm('model.norm', config.hiddenSize, config.rmsNormEps, options.normWeightOffset ?? 0) : null;
    this.lmHead = this.isLastStage
      ? new ParallelLMHead({ ...vocab, prefix: 'lm_head', tiedTo: config.tieWordEmbeddings ? this.embedTokens! : undefined })
      : null;
  }

  parameters(): Parameter[] {
    return [
      ...(this.embedTokens?.parameters() ?? []),
      ...this.layers.flatMap((l) => l.parameters()),
      ...(this.norm ? [this.norm.weight] : []),
      ...(this.lmHead?.parameters() ?? []),
    ];
  }

  /** Checkpoint tensors this rank does not hold: other stages' layers, embedding, head, experts. */
  isElsewhere(name: string): boolean {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) {
      const i = Number(m[1]);
      if (i < this.startLayer || i >= this.endLayer) return true;
      return this.layers[i - this.startLayer]!.mlp.isElsewhere?.(name) ?? false;
    }
    if (name.startsWith('model.embed_tokens.')) return this.embedTokens === null;
    if (name.startsWith('model.norm.')) return this.norm === null;
    if (name.startsWith('lm_head.')) return this.lmHead === null || this.lmHead.tied;
    return false;
  }

  /** Never weights: rotary caches, and layers past num_hidden_layers (DeepSeek's multi-token-prediction heads). */
  ignoreTensor(name: string): boolean {
    if (name.includes('rotary_emb.inv_freq')) return true;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    return m !== null && Number(m[1]) >= this.config.numHiddenLayers;
  }

  /** One spec per attention layer of this stage, in layer order. */
  kvCacheSpecs(): KVCacheSpec[] {
    return this.layers.map((l) => l.selfAttn.kvCacheSpec);
  }

  /** The paged caches `forward` uses with `useCache`, one per layer as `kvCacheSpecs()` lists them. */
  bindKVCaches(caches: PagedKVCache[]): void {
    const specs = this.kvCacheSpecs();
    if (caches.length !== specs.length) throw new ConfigError(`bindKVCaches: this stage has ${specs.length} attention layers, got ${caches.length} caches`);
    caches.forEach((c, i) => {
      const want = specs[i]!;
      const got = c.spec;
      if (got.numKvHeads !== want.numKvHeads || got.headDim !== want.headDim || got.vHeadDim !== want.vHeadDim || got.valueIsKeyPrefix !== want.valueIsKeyPrefix) {
        throw new ConfigError(`bindKVCaches: layer ${this.startLayer + i} needs ${JSON.stringify(want)}, its cache is for ${JSON.stringify(got)}`);
      }
      if (c.blockSize !== caches[0]!.blockSize) throw new ConfigError(`bindKVCaches: every layer's cache needs one block size (${caches[0]!.blockSize} vs ${c.blockSize})`);
    });
    this.caches = [...caches];
  }

  async forward(input: ForwardInput, intermediate: IntermediateTensors | null): Promise<tf.Tensor2D | IntermediateTensors> {
    if (input.useCache && this.caches === null && this.layers.length > 0) {
      throw new ConfigError('forward with useCache needs paged KV caches: call bindKVCaches(caches) first');
    }
    let hidden: tf.Tensor2D;
    let residual: tf.Tensor2D | null;
    if (this.isFirstStage) {
      hidden = await this.embedTokens!.forward(input.inputIds);
      const mult = this.options.embeddingMultiplier;
      if (mult !== undefined && mult !== 1) {
        const scaled = tf.mul(hidden, mult) as tf.Tensor2D;
        hidden.dispose();
        hidden = scaled;
      }
      residual = null;
    } else {
      if (!intermediate) throw new Error('a non-first pipeline stage needs the previous stage hidden states');
      hidden = intermediate.hidden_states.clone();
      residual = intermediate.residual.clone();
    }
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i]!;
      const cache = input.useCache ? this.caches![i]! : null;
      const [h, r] = await traced(input.tracer, `layer ${this.startLayer + i}`, 'compute', () =>
        layer.forward(input.positions, hidden, residual, input.meta, cache),
      );
      hidden.dispose();
      residual?.dispose();
      hidden = h;
      residual = r;
    }
    if (!this.isLastStage) return { hidden_states: hidden, residual: residual! };
    const [normed, sum] = this.norm!.forwardResidual(hidden, residual!);
    hidden.dispose();
    residual!.dispose();
    sum.dispose();
    return normed;
  }

  /** Why this rank's layers cannot record a device plan (the first layer without one), or null. */
  planUnsupported(): string | null {
    for (const l of this.layers) {
      const why = l.record ? (l.planUnsupported?.() ?? null) : `${l.constructor.name} has no device plan`;
      if (why) return why;
    }
    return null;
  }

  /**
   * This rank's device plan: the same stage the tfjs `forward` + `computeLogits` run (embedding, layers,
   * final norm, LM head on the sampled rows, soft cap), recorded once. Throws when `planUnsupported()`.
   */
  recordPlan(): DevicePlan {
    const why = this.planUnsupported();
    if (why) throw new ConfigError(`device plan: ${why}`);
    const b = new PlanBuilder();
    const H = this.config.hiddenSize;
    const residual = b.act('residual', H);
    let hidden: PlanAct;
    let inHidden: PlanAct | null = null;
    if (this.isFirstStage) {
      hidden = b.act('embedding', H);
      this.embedTokens!.record(b, hidden, this.options.embeddingMultiplier ?? 1);
    } else {
      hidden = inHidden = b.act('input.hidden', H);
    }
    let x: ActView = whole(hidden);
    this.layers.forEach((layer, i) => {
      x = layer.record!(b, x, whole(residual), this.isFirstStage && i === 0);
    });
    if (!this.isLastStage) return b.build(this.config.vocabSize, { hidden: x.act, residual, inHidden, inResidual: this.isFirstStage ? null : residual });
    const normed = b.act('final.normed', H);
    this.norm!.record(b, x, whole(normed), whole(residual));
    const logits = this.lmHead!.record(b, whole(normed));
    const cap = this.options.finalLogitSoftcapping;
    if (cap !== undefined && cap !== null) b.op({ kind: 'softcap', x: whole(logits), cap });
    return b.build(this.config.vocabSize, { logits, inHidden, inResidual: this.isFirstStage ? null : residual });
  }

  async computeLogits(hidden: tf.Tensor2D): Promise<tf.Tensor2D | null> {
    const logits = await this.lmHead!.forward(hidden);
    const cap = this.options.finalLogitSoftcapping;
    if (logits === null || cap === undefined || cap === null) return logits;
    const capped = tf.tidy(() => tf.mul(tf.tanh(tf.div(logits, cap)), cap) as tf.Tensor2D);
    logits.dispose();
    return capped;
  }

  dispose(): void {
    this.embedTokens?.dispose();
    for (const l of this.layers) l.dispose();
    this.norm?.dispose();
    this.lmHead?.dispose();
    this.caches = null;
  }
}
