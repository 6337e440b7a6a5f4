/**
 * What runs a `DevicePlan`: the host executor (@weft/cpu-kernels, native
 * where built, portable JS otherwise) and the WebGPU executor (one command
 * buffer per boundary-free segment). An executor uploads the plan's weights
 * once, owns its paged KV caches (the engine's block ids, the layout
 * `AttentionOp` documents), and runs one step per call; collectives
 * (`allReduce`, `gatherColumns`) go through `plan/collectives.ts` on the
 * op's group.
 */
import type { SeqMetadata } from '../attention-metadata.js';
import type { DevicePlan } from './builder.js';
import type { PlanOpKind } from './ops.js';
import type { RowSampled, RowSampling } from './row-sampling.js';

export interface PlanStepInput {
  /** `[T]` token ids (read by `embed`; first stage). */
  tokenIds: Int32Array;
  /** `[T]` positions (rotary, attention). */
  positions: Int32Array;
  /** The flattened batch's sequences in row order (`start` row, `queryLen`, `contextLen`, `blockTable`). */
  seqs: readonly SeqMetadata[];
  blockSize: number;
  /** `[S]` rows the step samples from (`gatherSampled`), in the order logits come back. */
  sampledRows: Int32Array;
  /** Non-first stages: the previous stage's `[T, hidden]` hidden states and residual. */
  hidden?: Float32Array;
  residual?: Float32Array;
  /**
   * Which sampled rows need their logits on the host (anything but plain greedy); an executor that
   * computes the greedy token itself may skip reading back the others. Absent: all.
   */
  logitsRows?: readonly boolean[];
  /** Executors with `samplingSlots`: the sampled rows to sample on the device (null: not there; its logits row or greedy token as before). */
  sampling?: readonly (RowSampling | null)[];
}

export interface PlanStepOutput {
  /** `[S, width]` logits of the sampled rows (width = the logits activation's, ≥ vocab), where read back. */
  logits: Float32Array | null;
  /** `[S]` greedy (argmax over the first `vocab` columns) tokens, when the executor computed them. */
  greedy: Int32Array | null;
  /** Non-last stages: `[T, hidden]` for the next stage. */
  hidden: Float32Array | null;
  residual: Float32Array | null;
  /** `[S]` what the device sampled for the rows `PlanStepInput.sampling` gave (null elsewhere); absent when none. */
  sampled?: (RowSampled | null)[] | null;
}

export interface PlanExecutor {
  readonly name: string;
  /** Most rows (tokens) and sequences one step may carry (buffers sized once); absent: any. The runner splits bigger steps. */
  readonly maxRows?: number;
  readonly maxSeqs?: number;
  /** Samples on its device (`PlanStepInput.sampling`), keeping this many sequences' token histories (penalties) there. */
  readonly samplingSlots?: number;
  /** Allocate the paged KV caches (one per attention op's cacheIndex) for `numBlocks` blocks. Bytes used. */
  initCaches(numBlocks: number, blockSize: number): number | Promise<number>;
  step(input: PlanStepInput): Promise<PlanStepOutput>;
  dispose(): void;
}

/** What an executor supports, for `unsupportedOps`. */
export interface ExecutorCaps {
  readonly name: string;
  readonly ops: ReadonlySet<PlanOpKind>;
}

/** Why `caps` cannot run `plan` (the first op kind it lacks), or null. */
export function unsupportedOps(plan: DevicePlan, caps: ExecutorCaps): string | null {
  for (const op of plan.ops) if (!caps.ops.has(op.kind)) return `the ${caps.name} executor has no '${op.kind}' op`;
  return null;
}
