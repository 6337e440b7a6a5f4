/**
 * Vocabulary-parallel embedding and LM head (vLLM `vocab_parallel_embedding.py`):
 * the vocab is padded (to a multiple of 64·tp, so every rank gets an equal
 * share) and split over tp; padding rows are zero.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { vocabRange } from '@weft/core';
import { expectCheckpointShape, Parameter, type HostTensor, type WeightLoader } from './parameter.js';
import { linearOp } from './kernels/index.js';
import { EmbeddingWeight } from './embedding-weight.js';
import { LinearWeight } from './linear/linear-weight.js';
import { whole, type PlanBuilder } from './plan/builder.js';
import type { ActView, PlanAct } from './plan/ops.js';

export interface VocabParallelOptions {
  prefix: string;
  numEmbeddings: number;
  embeddingDim: number;
  tp: GroupCoordinator;
  /**
   * An untied LM head only multiplies by its weight: hold it as a LinearWeight (kept `[dim, rows]` in fp32,
   * or as its linear method stores it, e.g. bf16 with dtype bfloat16).
   */
  storeTransposed?: boolean;
}

export class VocabParallelEmbedding {
  readonly weight: Parameter;
  readonly tp: GroupCoordinator;
  readonly numEmbeddings: number;
  readonly paddedVocab: number;
  /** This rank's `[start, end)` rows of the padded vocab. */
  readonly vocabStart: number;
  readonly vocabEnd: number;

  constructor(opts: VocabParallelOptions, weightName = `${opts.prefix}.weight`) {
    this.tp = opts.tp;
    this.numEmbeddings = opts.numEmbeddings;
    const r = vocabRange(opts.numEmbeddings, opts.tp.rankInGroup, opts.tp.worldSize);
    this.paddedVocab = r.padded;
    this.vocabStart = r.start;
    this.vocabEnd = r.end;
    const rows = r.end - r.start;
    const loader: WeightLoader = (param, weight) => {
      expectCheckpointShape(weight, [opts.numEmbeddings, opts.embeddingDim], param);
      // Rows past the real vocab are padding: zero.
      const real = Math.max(0, Math.min(r.end, opts.numEmbeddings) - r.start);
      // No padding on this rank: no second copy of a vocabulary-sized tensor (it counts at load).
      if (real === rows) return param.set(weight.narrow(0, r.start, real), weight.name);
      const host: HostTensor = { shape: [rows, opts.embeddingDim], dtype: 'float32', data: new Float32Array(rows * opts.embeddingDim) };
      if (real > 0) host.data.set(weight.narrow(0, r.start, real).data);
      param.set(host, weight.name);
    };
    this.weight = opts.storeTransposed ? new LinearWeight(weightName, rows, opts.embeddingDim, loader) : new EmbeddingWeight(weightName, rows, opts.embeddingDim, loader);
  }

  parameters(): Parameter[] {
    return [this.weight];
  }

  /** ids int32 `[T]` → `[T, dim]`: look up the ids in this shard, zero the others, all-reduce. */
  async forward(ids: tf.Tensor1D): Promise<tf.Tensor2D> {
    const w = this.weight;
    if (w instanceof EmbeddingWeight && w.packed) {
      // bf16 rows: looked up on the host (ids outside this shard give zero rows), then summed over tp.
      const partial = w.lookup((await ids.data()) as Int32Array, this.vocabStart);
      if (this.tp.worldSize === 1) return partial;
      const out = (await this.tp.allReduce(partial)) as tf.Tensor2D;
      partial.dispose();
      return out;
    }
    if (this.tp.worldSize === 1) return tf.gather(this.weight.tensor, ids) as tf.Tensor2D;
    const partial = tf.tidy(() => {
      const start = tf.scalar(this.vocabStart, 'int32');
      const inShard = tf.logicalAnd(tf.greaterEqual(ids, start), tf.less(ids, tf.scalar(this.vocabEnd, 'int32')));
      const local = tf.where(inShard, tf.sub(ids, start), tf.zerosLike(ids));
      const rows = tf.gather(this.weight.tensor, local);
      return tf.mul(rows, tf.expandDims(tf.cast(inShard, 'float32'), 1)) as tf.Tensor2D;
    });
    const out = (await this.tp.allReduce(partial)) as tf.Tensor2D;
    partial.dispose();
    return out;
  }

  /** Records the lookup of the step's ids into `out` (`[T, dim]`), times `scale`, and its all-reduce over tp. */
  record(b: PlanBuilder, out: PlanAct, scale = 1): void {
    if (!(this.weight instanceof EmbeddingWeight)) throw new Error(`${this.weight.name}: an LM head's transposed weight cannot be looked up`);
    b.op({ kind: 'embed', table: this.weight, vocabStart: this.vocabStart, vocabEnd: this.vocabEnd, scale, out });
    b.allReduce(whole(out), this.tp);
  }

  dispose(): void {
    this.weight.dispose();
  }
}

export interface ParallelLMHeadOptions extends VocabParallelOptions {
  /** Share the embedding's weight (tie_word_embeddings). */
  tiedTo?: VocabParallelEmbedding;
}

/**
 * LM head over the vocab shard; logits are gathered to tp rank 0 (vLLM's
 * LogitsProcessor) and cut to the real vocab size. Other ranks get null.
 */
export class ParallelLMHead {
  readonly embedding: VocabParallelEmbedding;
  readonly tied: boolean;
  /** Tied head: `[dim, vocab/tp]`, the embedding's transpose, made once (matMul with transposeB is ~10× slower on wasm). */
  private weightT: tf.Tensor2D | null = null;

  constructor(opts: ParallelLMHeadOptions) {
    this.tied = opts.tiedTo !== undefined;
    this.embedding = opts.tiedTo ?? new VocabParallelEmbedding({ ...opts, storeTransposed: true });
  }

  /** Its own parameters (none when tied: the embedding owns the weight). */
  parameters(): Parameter[] {
    return this.tied ? [] : this.embedding.parameters();
  }

  get tp(): GroupCoordinator {
    return this.embedding.tp;
  }

  /** hidden `[T, dim]` → logits `[T, vocab]` on tp rank 0, null elsewhere. */
  async forward(hidden: tf.Tensor2D): Promise<tf.Tensor2D | null> {
    const w = this.embedding.weight;
    const local =
      w instanceof LinearWeight || (w instanceof EmbeddingWeight && w.packed)
        ? w.apply(hidden)
        : linearOp(hidden, (this.weightT ??= tf.keep(tf.transpose(w.tensor as tf.Tensor2D))));
    const tp = this.tp;
    const full = tp.worldSize === 1 ? local : await tp.gather(local, 0, -1);
    if (full !== local) local.dispose();
    if (full === null) return null;
    if (full.shape[1] === this.embedding.numEmbeddings) return full as tf.Tensor2D;
    const cut = tf.slice(full, [0, 0], [-1, this.embedding.numEmbeddings]) as tf.Tensor2D;
    full.dispose();
    return cut;
  }

  /**
   * Records the logits of the sampled rows of `hidden`: `[S, paddedVocab]` on tp rank 0 (the caller reads
   * the first `numEmbeddings` columns), this rank's `[S, vocab/tp]` elsewhere.
   */
  record(b: PlanBuilder, hidden: ActView): PlanAct {
    const w = this.embedding.weight as LinearWeight | EmbeddingWeight;
    const [rows, dim] = w.shape as [number, number];
    const sampled = b.act('lm_head.input', dim, 'sampled');
    b.op({ kind: 'gatherSampled', x: hidden, out: whole(sampled) });
    const local = b.act('lm_head.local', rows, 'sampled');
    b.op({ kind: 'linear', x: whole(sampled), out: whole(local), weight: w, bias: null, accumulate: false });
    if (this.tp.worldSize === 1) return local;
    const full = b.act('lm_head.logits', rows * this.tp.worldSize, 'sampled');
    b.op({ kind: 'gatherColumns', x: whole(local), out: whole(full), group: this.tp });
    return full;
  }

  dispose(): void {
    this.weightT?.dispose();
    this.weightT = null;
    if (!this.tied) this.embedding.dispose();
  }
}
