import type * as tf from '@tensorflow/tfjs-core';
import type { AttentionMetadata } from '../attention-metadata.js';
import type { KVCacheSpec, PagedKVCache } from '../paged-kv-cache.js';
import type { Parameter } from '../parameter.js';
import type { DevicePlan } from '../plan/builder.js';
import type { StackedParamMapping } from '../weight-loading.js';
import type { Tracer } from './tracer.js';

/** What travels between pipeline stages. */
export interface IntermediateTensors {
  hidden_states: tf.Tensor2D;
  residual: tf.Tensor2D;
}

export interface ForwardInput {
  inputIds: tf.Tensor1D;
  positions: tf.Tensor1D;
  meta: AttentionMetadata;
  /** Write into and read the bound paged KV caches through `meta`'s block tables (false: full-sequence forward, no cache at all). */
  useCache: boolean;
  tracer?: Tracer | null;
}

/** One rank's share of a causal LM, as the engine drives it. Llama and DeepSeek implement it. */
export interface CausalLMRank {
  readonly isFirstStage: boolean;
  readonly isLastStage: boolean;
  /** Replicas must step together (MoE with expert parallelism spanning DP): idle ones run dummy batches. */
  readonly needsDpLockstep?: boolean;
  parameters(): Parameter[];
  /** Checkpoint tensors held by other ranks (other stages, other experts): not "unused". */
  isElsewhere(name: string): boolean;
  readonly stackedParams: StackedParamMapping[];
  ignoreTensor(name: string): boolean;
  /** Last stage: final normed hidden states; other stages: what to send on. */
  forward(input: ForwardInput, intermediate: IntermediateTensors | null): Promise<tf.Tensor2D | IntermediateTensors>;
  /** Logits `[T, vocab]` on tp rank 0 of the last stage, null elsewhere. */
  computeLogits(hidden: tf.Tensor2D): Promise<tf.Tensor2D | null>;
  /**
   * One per attention layer of this rank's pipeline stage, in layer order: what its paged KV cache must hold,
   * and its sliding window (`slidingWindow`, null for global attention). The rank reports the windows to the
   * driver, whose KV-cache manager frees blocks outside every layer's window (`freeableWindow`).
   */
  kvCacheSpecs(): KVCacheSpec[];
  /** The paged caches (one per `kvCacheSpecs()` entry, one block size) that forward uses; the caller owns and disposes them. */
  bindKVCaches(caches: PagedKVCache[]): void;
  /** Why this rank cannot record a device plan (a layer without one), or null; absent: never. */
  planUnsupported?(): string | null;
  /** This rank's device plan (the same work as forward + computeLogits), for the host / WebGPU executors. */
  recordPlan?(): DevicePlan;
  dispose(): void;
}
