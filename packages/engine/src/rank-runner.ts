/**
 * What a rank's runners share: the arguments a rank starts with, the runner interface the rank loop drives (the
 * tfjs ModelRunner or the device plan's PlanRunner), each sequence's sampling state, and the step's message and result.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import type { BackendName, WeightFormat } from '@weft/core';
import type { CausalLMRank, CpuKernelsOptions } from '@weft/layers';
import type { DriverMessage, RankMessage, StepSeq } from './protocol.js';
import type { ModelModule } from './registry.js';
import { usesPenalties, type SamplingParams } from './sampling-params.js';

export type DevicePlanOption = 'auto' | boolean;

export interface RankArgs {
  modelDir: string;
  /** Started on tfjs's `cpu` backend standing in for this one until a tfjs step needs it (rank-backend.ts). */
  deferredBackend?: BackendName;
  /** The config's `architectures` entry the registry resolved (the rank entry builds it). */
  architecture: string;
  /** Set when the architecture was registered by module: every rank imports it. */
  modelModule?: ModelModule | null;
  blockSize: number;
  trace?: boolean;
  /** MoE token exchange under expert parallelism. */
  moeDispatch?: 'allgather' | 'alltoall';
  /** MLA models: cache the compressed latent (default) or full per-head K/V. */
  mlaKvCache?: 'latent' | 'full';
  /** Run the step on the model's device plan (LLMOptions.devicePlan; default 'auto'). */
  devicePlan?: DevicePlanOption;
  /** How the rank holds linear weights (LLMOptions dtype / quantization, validated on the driver); absent: fp32. */
  weightFormat?: WeightFormat;
  /** Packed weights on the tensorflow / wasm backends run @weft/cpu-kernels (a8 for Q8_0/Q4_0); false: dequantize per op. */
  cpuKernels?: boolean | CpuKernelsOptions;
  /** Threads a host-plan kernel call splits over (cores per rank; `cpuKernels.threads` overrides). */
  planThreads?: number;
  /** The engine's limits (the WebGPU executor sizes its buffers by them). */
  maxNumBatchedTokens?: number;
  maxNumSeqs?: number;
  maxModelLen?: number;
}

/** What a rank's loop drives: the tfjs `ModelRunner` or the WebGPU step's runner. */
export interface RankRunner {
  initKVCaches(numBlocks: number, blockSize: number): number | Promise<number>;
  step(msg: StepMsg): Promise<StepResult | null>;
  dispose(): void;
}

export type ModelFactory = (dir: string, state: ParallelState, args: RankArgs) => CausalLMRank | Promise<CausalLMRank>;

/** Sampling state of one sequence on the sampling rank. */
export interface SeqState {
  sampling: SamplingParams;
  history: { prompt: Set<number>; output: Map<number, number> } | null;
}

export type StepMsg = Extract<DriverMessage, { type: 'step' }>;
export type StepResult = Omit<Extract<RankMessage, { type: 'result' }>, 'type' | 'stepId' | 'numTensors'>;

export function startState(start: NonNullable<StepSeq['start']>): SeqState {
  const sampling = start.sampling;
  if (!usesPenalties(sampling)) return { sampling, history: null };
  const output = new Map<number, number>();
  for (const t of start.history?.output ?? []) output.set(t, (output.get(t) ?? 0) + 1);
  return { sampling, history: { prompt: new Set(start.history?.prompt ?? []), output } };
}

export async function allGatherCounts(state: ParallelState, n: number): Promise<number[]> {
  const mine = tf.tensor1d([n], 'int32');
  const all = await state.dp.allGather(mine, 0);
  const counts = Array.from(await all.data());
  tf.dispose([mine, all]);
  return counts;
}
