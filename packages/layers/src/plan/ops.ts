/**
 * The device plan's operations: what one rank does in one step, recorded by
 * the layers themselves (`record(builder, …)` beside each layer's tfjs
 * `forward`), run by an executor (the host executor on @weft/cpu-kernels, the
 * WebGPU executor in one submit per step). A plan is data: it names the
 * layer's weights (their linear method decides the storage an executor
 * uploads), its activation buffers and its collectives; it never holds
 * tensors and it does not depend on the batch shape, so one plan serves every
 * step of its rank.
 *
 * Activations are fp32 `[rows, width]` row-major, rows = the step's tokens
 * (`rows: 'tokens'`) or its sampled rows (`'sampled'`, the LM head's input).
 * An op reads and writes column ranges (`ActView`), so a fused QKV output is
 * one buffer whose q/k/v parts rotary and attention address in place.
 */
import type { GroupCoordinator } from '@weft/comm';
import type { LinearWeight } from '../linear/linear-weight.js';
import type { Parameter } from '../parameter.js';
import type { EmbeddingWeight } from '../embedding-weight.js';
import type { RotaryEmbedding } from '../rotary/rotary-embedding.js';

export interface PlanAct {
  readonly id: number;
  /** For errors and traces, e.g. `model.layers.3.qkv`. */
  readonly name: string;
  readonly width: number;
  readonly rows: 'tokens' | 'sampled';
}

/** Columns `col … col + width` of an activation. */
export interface ActView {
  readonly act: PlanAct;
  readonly col: number;
  readonly width: number;
}

/**
 * `out[t] = table[ids[t] − vocabStart] · scale` for ids in `[vocabStart, vocabEnd)`, zero rows for the
 * others (vocab-parallel: an `allReduce` op follows when tp > 1). `table` is the embedding's weight:
 * fp32 (`tensor`, `[rows, dim]`), bf16 (`EmbeddingWeight.packed`), or an untied head's LinearWeight.
 */
export interface EmbedOp {
  readonly kind: 'embed';
  readonly table: EmbeddingWeight;
  readonly vocabStart: number;
  readonly vocabEnd: number;
  /** Gemma: √hidden rounded to the model's dtype; 1 otherwise. */
  readonly scale: number;
  readonly out: PlanAct;
}

/**
 * RMSNorm over groups of `groupSize` columns of `x` (groupSize = x.width for a whole row; head_dim for
 * Qwen3's per-head q/k norm): `out = x / √(mean(x²) + eps) · (weight + weightOffset)`, fp32 throughout
 * (HF casts to fp32 first). With `residual` (vLLM's fused add): first `residual ← x + residual`
 * (or `residual ← x` when `residualInit`), then the norm of the new residual into `out`.
 * `out` may be `x` itself.
 */
export interface RmsNormOp {
  readonly kind: 'rmsNorm';
  readonly x: ActView;
  readonly out: ActView;
  readonly weight: Parameter;
  readonly eps: number;
  readonly weightOffset: number;
  readonly groupSize: number;
  readonly residual: ActView | null;
  /** The first layer of the first stage: the residual starts as x (no add). */
  readonly residualInit: boolean;
}

/**
 * `out (+)= x · Wᵀ (+ bias)`, W `[n, k]` = weight.shape on this rank, through the weight's linear method
 * (fp32, bf16, q8_0, q4_0: `weight.quantMethod.name`, storage `weight.packed` or the fp32 tensor `[k, n]`).
 * `accumulate`: add into `out` (the residual add fused into o_proj / down_proj on executors that can).
 */
export interface LinearOp {
  readonly kind: 'linear';
  readonly x: ActView;
  readonly out: ActView;
  readonly weight: LinearWeight | EmbeddingWeight;
  readonly bias: Parameter | null;
  readonly accumulate: boolean;
}

/**
 * Rotary embedding, in place, on `heads` heads of `headSize` columns starting at `x.col`, at the step's
 * positions: the first `rope.rotaryDim` of each head rotate (neox: halves; gpt-j: interleaved pairs),
 * with cos/sin from `cosSinTable(rope.invFreq, positions, rope.attentionScaling)`.
 */
export interface RotaryOp {
  readonly kind: 'rotary';
  readonly x: ActView;
  readonly heads: number;
  readonly rope: RotaryEmbedding;
}

/**
 * Paged attention of one layer: first the step's new K (and V) rows are written into the layer's cache
 * (`cacheIndex` into the caches the runner binds, slot `blockTable[p / blockSize]·blockSize + p % blockSize`,
 * layout `[block, Hk, blockSize, D]`), then each query row attends causally to its sequence's cached
 * positions (within the sliding window) and writes `[heads · vHeadDim]` into `out`. Scores
 * `q·k · scale`, then `cap·tanh(s / cap)` with a soft cap, softmax in fp32. GQA: query head h reads KV
 * head `⌊h / (heads / kvHeads)⌋`. With `valueIsKeyPrefix` (MLA's latent cache) `v` is null and V is the
 * first vHeadDim columns of K.
 */
export interface AttentionOp {
  readonly kind: 'attention';
  readonly q: ActView;
  readonly k: ActView;
  readonly v: ActView | null;
  readonly out: ActView;
  readonly cacheIndex: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly scale: number;
  readonly logitsSoftCap: number | null;
  readonly slidingWindow: number | null;
  readonly valueIsKeyPrefix: boolean;
}

/** `x = gate | up` (each `x.width / 2`) → `act(gate) · up` into `out`: SiLU, or GELU-tanh (Gemma). */
export interface GatedActOp {
  readonly kind: 'gatedAct';
  readonly act: 'silu' | 'gelu_tanh';
  readonly x: ActView;
  readonly out: ActView;
}

/** `out = a + b` (out may be a or b). */
export interface AddOp {
  readonly kind: 'add';
  readonly a: ActView;
  readonly b: ActView;
  readonly out: ActView;
}

/**
 * A collective: a plan boundary (the executor ends its device work, the runner's communicator sums
 * `x` over `group` in place, the executor goes on). No op at world size 1 is ever recorded.
 */
export interface AllReduceOp {
  readonly kind: 'allReduce';
  readonly x: ActView;
  readonly group: GroupCoordinator;
}

/** The rows of `x` the step samples from (each sequence's last row) into a `'sampled'` activation. */
export interface GatherSampledOp {
  readonly kind: 'gatherSampled';
  readonly x: ActView;
  readonly out: ActView;
}

/**
 * Vocab-parallel logits to tp rank 0: `out` (width = x.width · group.worldSize) holds every rank's
 * columns in rank order on rank 0 (vLLM's LogitsProcessor gather); other ranks' `out` is untouched.
 * A plan boundary, like allReduce.
 */
export interface GatherColumnsOp {
  readonly kind: 'gatherColumns';
  readonly x: ActView;
  readonly out: ActView;
  readonly group: GroupCoordinator;
}

/** `x = cap · tanh(x / cap)` in place (Gemma 2's final logit soft-capping). */
export interface SoftcapOp {
  readonly kind: 'softcap';
  readonly x: ActView;
  readonly cap: number;
}

export type PlanOp = EmbedOp | RmsNormOp | LinearOp | RotaryOp | AttentionOp | GatedActOp | AddOp | AllReduceOp | GatherSampledOp | GatherColumnsOp | SoftcapOp;
export type PlanOpKind = PlanOp['kind'];
