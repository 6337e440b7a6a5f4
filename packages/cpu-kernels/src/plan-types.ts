/** The argument types of the host plan ops (plan-ops.ts). */
import type { Q4_0Weight, Q8_0Weight } from './formats.js';

export interface View {
  data: Float32Array;
  offset: number;
  stride: number;
}

/** A weight `[n, k]` as a host executor holds it; fp32 in either layout (`kn`: the `[k, n]` tensor of a LinearWeight). */
export type HostMatrix =
  | ({ format: 'q8_0'; n: number; k: number } & Q8_0Weight)
  | ({ format: 'q4_0'; n: number; k: number } & Q4_0Weight)
  | { format: 'bf16'; n: number; k: number; data: Uint16Array }
  | { format: 'fp32'; n: number; k: number; data: Float32Array; layout: 'nk' | 'kn' };

/** Embedding rows: fp32 `[rows, dim]` (or a `kn` matrix's columns) or bf16 `[rows, dim]`. */
export type EmbedTable = Extract<HostMatrix, { format: 'fp32' | 'bf16' }>;

/** Fields per sequence in `PagedAttentionArgs.seqs`, in this order (native/kernels.h ATTN_*). */
export const ATTN_SEQ_FIELDS = 5;

/**
 * One layer's paged attention over a step: first each row's K (and V) go into the cache slot of its position
 * (`blockTable[p / blockSize]·blockSize + p % blockSize`, layout `[block, Hk, blockSize, D]`), then each row attends
 * causally (positions ≤ its own, the last `slidingWindow` of them when > 0) over its sequence's cache: scores
 * `q·k · scale`, `cap·tanh(s / cap)` when softCap > 0, softmax in fp32, GQA head h → KV head ⌊h / (H / Hk)⌋.
 * vCache null: V is the first vHeadDim columns of K (MLA's latent cache; `v` is then null too).
 */
export interface PagedAttentionArgs {
  q: View;
  k: View;
  v: View | null;
  out: View;
  kCache: Float32Array;
  vCache: Float32Array | null;
  /** Per sequence: seqId, first row, query rows, context length (cached before this step), offset of its table in `tables`. */
  seqs: Int32Array;
  tables: Int32Array;
  rows: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vHeadDim: number;
  blockSize: number;
  numBlocks: number;
  /** 0: every position. */
  slidingWindow: number;
  scale: number;
  /** 0: no soft cap. */
  softCap: number;
}
