/**
 * What the host executor's op implementations see: `HostUpload` once, when
 * the executor is built (weights read out of their parameters, shared between
 * ops), `HostStep` on every step (the step's buffers as views, cos/sin per
 * rope, the caches, the packed sequence table). An op implementation
 * (op-table.ts) turns one recorded op into a `HostOpRun` closure at upload.
 */
import type { HostMatrix, PlanKernels, View } from '@weft/cpu-kernels';
import type { EmbeddingWeight } from '../../embedding-weight.js';
import type { LinearWeight } from '../../linear/linear-weight.js';
import type { Parameter } from '../../parameter.js';
import type { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import type { PlanStepInput } from '../executor.js';
import type { ActView, PlanAct, PlanOp, PlanOpKind } from '../ops.js';

export interface HostUpload {
  readonly kernels: PlanKernels;
  /** A linear / embedding weight as the kernels take it: packed blocks as they are, fp32 read once (layout: upload.ts). */
  matrix(w: LinearWeight | EmbeddingWeight): HostMatrix;
  /** A vector parameter's fp32 values (norm weights, biases), read once. */
  vector(p: Parameter): Float32Array;
}

/** One layer's paged KV cache on this rank, `[block, Hk, blockSize, D]` (V: `vHeadDim`; null with a latent cache). */
export interface HostKvCache {
  readonly k: Float32Array;
  readonly v: Float32Array | null;
}

export interface HostStep {
  readonly input: PlanStepInput;
  /** The step's token rows T and sampled rows S. */
  readonly tokens: number;
  readonly sampled: number;
  /** Rows of an activation this step (T or S). */
  rowsOf(act: PlanAct): number;
  /** The buffer of an activation, `[rows, act.width]` row-major (it may be longer: buffers grow, never shrink). */
  buf(act: PlanAct): Float32Array;
  /** A view's columns as the kernels address them. */
  view(v: ActView): View;
  /** cos, sin `[T, rotaryDim / 2]` at the step's positions (once per rope per step). */
  cosSin(rope: RotaryEmbedding): [Float32Array, Float32Array];
  cache(index: number): HostKvCache;
  readonly numBlocks: number;
  /** The sequences as @weft/cpu-kernels' attention takes them (ATTN_SEQ_FIELDS each) and their block tables. */
  readonly seqTable: Int32Array;
  readonly blockTables: Int32Array;
}

/** One op's work in a step (a collective is async). */
export type HostOpRun = (step: HostStep) => void | Promise<void>;

/** An op kind's implementation: called once per recorded op at upload. */
export type HostOpImpl<K extends PlanOpKind> = (op: Extract<PlanOp, { kind: K }>, up: HostUpload) => HostOpRun;
