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
import type { DispatchMethod } from '../moe/dispatch.js';
import type { MoERouting } from '../moe/router.js';

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

/** One routed expert this rank holds: its global id and its two weights (each with its own linear method). */
export interface MoeExpert {
  readonly id: number;
  /** `[2·I, H]` on this rank (I = the rank's share of moe_intermediate_size): gate rows, then up rows. */
  readonly gateUp: LinearWeight;
  /** `[H, I]`. */
  readonly down: LinearWeight;
}

/**
 * vLLM's FusedMoE over this rank's routed experts, from the router `logits` `[T, E]` (a `linear` op on the
 * replicated gate precedes it). Routing per token, exactly as `moe/router.ts` `selectExperts` (fp32):
 * scores = softmax or sigmoid(logits) (`routing.scoring`); choice = scores (+ `correctionBias` when given);
 * methods 'group_limited_greedy' / 'noaux_tc' with topkGroup < nGroup: group score = sum of the group's top-2
 * choice values (noaux_tc or a bias) else its max, keep the `topkGroup` best groups, others' choice → 0.0;
 * ids = top-`topK` of choice (descending, ties to the lowest id; 'greedy' ignores groups); weights = the
 * unbiased scores at the ids (noaux_tc or a bias) else the chosen values; renormalize: w / (Σw + 1e-20);
 * × routedScalingFactor (when set and ≠ 1). Then per token, over the chosen experts this rank holds in
 * ascending global id, starting from zero: `out[t] += w · down_e(silu(g) · u)` with `g | u = gateUp_e(x[t])`,
 * both through the weight's linear method (as a `linear` op, quantized activations included); `out` is
 * overwritten. Experts held on other EP ranks (absent from `experts`) and TP-split experts (their partial)
 * give this rank's part of the sum: the layer records the all-reduce that completes it. With `exchange` (EP
 * across DP replicas) the rows travel to the experts' ranks first (`MoeExchange`).
 */
export interface MoeOp {
  readonly kind: 'moe';
  readonly x: ActView;
  readonly logits: ActView;
  readonly out: ActView;
  /** The method resolved (`routingMethod`), without the bias (below). */
  readonly routing: MoERouting;
  /** `e_score_correction_bias` `[E]` (DeepSeek V3), or null. */
  readonly correctionBias: Parameter | null;
  readonly numExperts: number;
  /** This rank's experts, ascending global id. */
  readonly experts: readonly MoeExpert[];
  /** Expert parallelism across DP replicas (the EP group larger than TP), or null. */
  readonly exchange: MoeExchange | null;
}

/**
 * A `moe` op's token exchange when its EP group spans DP replicas (vLLM's EP = DP×TP): the op is then a plan
 * boundary. This TP rank routes its even share of the step's rows (`tokenShare` over `tp`), the rows and their
 * routing go to the EP ranks holding their experts (`dispatch` as `moe/dispatch.ts`: 'allgather' all-gathers
 * every rank's rows and reduce-scatters the partial sums, 'alltoall' sends each row only where its experts
 * are), each rank runs its experts on what it received, and the sums come back; `out` holds this rank's share
 * of rows, zeros elsewhere (the layer's TP all-reduce completes them). Every EP rank runs the op every step.
 */
export interface MoeExchange {
  readonly ep: GroupCoordinator;
  readonly tp: GroupCoordinator;
  readonly dispatch: DispatchMethod;
  /** Global expert id → the EP rank holding it. */
  readonly owners: Int32Array;
}

/** fp32 matrices `[heads, k, n]` (MLA's absorbed kv_b_proj halves, dequantized as vLLM does), made once at upload. */
export interface HeadMatrices {
  /** For errors and traces, e.g. `model.layers.0.self_attn.kv_b_proj.W_UK`. */
  readonly name: string;
  readonly heads: number;
  readonly k: number;
  readonly n: number;
  /** The values, `[heads, k, n]` row-major (computed on call: call once, at upload). */
  data(): Float32Array;
  /** The parameter `data` reads (`prefetchHostValues` reads it ahead for executors on the webgpu backend). */
  readonly source?: Parameter;
}

/**
 * A matmul per head (MLA's absorption: q_nope · W_UK into latent space, the latent context · W_UV back):
 * for h < weight.heads, `out[t, out.col + h·outStride + j] = Σ_{i<k} x[t, x.col + h·xStride + i] · W[h, i, j]`
 * for j < n. Columns of `out` between heads are left as they are. Accumulation in fp32.
 */
export interface HeadMatmulOp {
  readonly kind: 'headMatmul';
  /** Spans `(heads − 1)·xStride + k` columns. */
  readonly x: ActView;
  readonly xStride: number;
  /** Spans `(heads − 1)·outStride + n` columns. */
  readonly out: ActView;
  readonly outStride: number;
  readonly weight: HeadMatrices;
}

/**
 * Strided column copy: `out[t, out.col + h·outStride + j] = x[t, x.col + h·xStride + j]` for h < heads,
 * j < width (MLA: q's rope parts out of and into per-head layouts; `xStride` 0 repeats one head, e.g. the
 * shared rope key into every head of a full-cache key). `x` and `out` must not overlap.
 */
export interface CopyHeadsOp {
  readonly kind: 'copyHeads';
  readonly x: ActView;
  readonly xStride: number;
  readonly out: ActView;
  readonly outStride: number;
  readonly heads: number;
  readonly width: number;
}

/**
 * `x` ← `x` as the executor's linear kernel for `weight` sees its input, in place: rounded through Q8_0 blocks
 * of 32 (llama.cpp's quantize_row_q8_0 and back) when that kernel quantizes activations for
 * `weight.quantMethod.name` (a8), unchanged otherwise (fp32, bf16, weight-only kernels). For math that uses a
 * weight outside its kernel and must see what the kernel would: MLA's latent, the input of the absorbed
 * kv_b_proj, before it is cached.
 */
export interface RoundInputOp {
  readonly kind: 'roundInput';
  readonly x: ActView;
  readonly weight: LinearWeight;
}

export type PlanOp =
  | EmbedOp | RmsNormOp | LinearOp | RotaryOp | AttentionOp | GatedActOp | AddOp | AllReduceOp | GatherSampledOp | GatherColumnsOp | SoftcapOp
  | MoeOp | HeadMatmulOp | CopyHeadsOp | RoundInputOp;
export type PlanOpKind = PlanOp['kind'];
