/**
 * LlamaForCausalLM for one rank: the layers of its pipeline stage, each split
 * over its TP group. The first stage embeds, the last norms and computes
 * logits; stages in between pass `{hidden_states, residual}` along the PP group.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { getPpIndices } from '@weft/core';
import {
  KVCache,
  ParallelLMHead,
  RMSNorm,
  traced,
  VocabParallelEmbedding,
  type CausalLMRank,
  type ForwardInput,
  type IntermediateTensors,
  type Parameter,
  type StackedParamMapping,
} from '@weft/layers';
import type { LlamaConfig } from './llama-config.js';
import { LlamaDecoderLayer } from './llama-decoder-layer.js';

export class LlamaForCausalLM implements CausalLMRank {
  readonly startLayer: number;
  readonly endLayer: number;
  readonly isFirstStage: boolean;
  readonly isLastStage: boolean;
  readonly embedTokens: VocabParallelEmbedding | null;
  readonly layers: LlamaDecoderLayer[] = [];
  readonly norm: RMSNorm | null;
  readonly lmHead: ParallelLMHead | null;
  readonly caches: KVCache[] = [];

  /** q/k/v and gate/up checkpoint tensors load into fused parameters. */
  readonly stackedParams: StackedParamMapping[] = [
    { param: '.qkv_proj', checkpoint: '.q_proj', shardId: 'q' },
    { param: '.qkv_proj', checkpoint: '.k_proj', shardId: 'k' },
    { param: '.qkv_proj', checkpoint: '.v_proj', shardId: 'v' },
    { param: '.gate_up_proj', checkpoint: '.gate_proj', shardId: 0 },
    { param: '.gate_up_proj', checkpoint: '.up_proj', shardId: 1 },
  ];

  constructor(readonly config: LlamaConfig, readonly state: ParallelState) {
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
      this.layers.push(new LlamaDecoderLayer(`model.layers.${i}`, config, tp));
      this.caches.push(new KVCache());
    }
    this.norm = this.isLastStage ? new RMSNorm('model.norm', config.hiddenSize, config.rmsNormEps) : null;
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

  /** Checkpoint tensors this stage does not hold (other stages' layers, embedding, head). */
  isElsewhere(name: string): boolean {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) {
      const i = Number(m[1]);
      return i < this.startLayer || i >= this.endLayer;
    }
    if (name.startsWith('model.embed_tokens.')) return this.embedTokens === null;
    if (name.startsWith('model.norm.')) return this.norm === null;
    if (name.startsWith('lm_head.')) return this.lmHead === null || this.lmHead.tied;
    return false;
  }

  ignoreTensor(name: string): boolean {
    return name.includes('rotary_emb.inv_freq');
  }

  /**
   * One forward over this stage. First stage: reads inputIds. Later stages:
   * `intermediate` from the previous stage. Returns the final normed hidden
   * states on the last stage, else the tensors to send on.
   */
  async forward(input: ForwardInput, intermediate: IntermediateTensors | null): Promise<tf.Tensor2D | IntermediateTensors> {
    let hidden: tf.Tensor2D;
    let residual: tf.Tensor2D | null;
    if (this.isFirstStage) {
      hidden = await this.embedTokens!.forward(input.inputIds);
      residual = null;
    } else {
      if (!intermediate) throw new Error('a non-first pipeline stage needs the previous stage hidden states');
      hidden = intermediate.hidden_states.clone();
      residual = intermediate.residual.clone();
    }
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i]!;
      const cache = input.useCache ? this.caches[i]! : null;
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

  /** Logits `[T, vocab]` on tp rank 0 of the last stage, null elsewhere. */
  computeLogits(hidden: tf.Tensor2D): Promise<tf.Tensor2D | null> {
    return this.lmHead!.forward(hidden);
  }

  freeSequence(seqId: number): void {
    for (const c of this.caches) c.free(seqId);
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const l of this.layers) l.selfAttn.dispose();
    for (const c of this.caches) c.dispose();
  }
}
