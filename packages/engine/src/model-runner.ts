/**
 * The loop each rank runs (vLLM's worker + GPU model runner): build its share
 * of the model, load its weights, report how many bytes a KV block takes here,
 * allocate the paged KV caches the driver sizes, then execute the steps the
 * driver broadcasts until told to stop. The sampling rank (TP rank 0 of the
 * last stage of each DP replica) keeps each sequence's sampling state.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState, RankContext } from '@weft/comm';
import { Checkpoint, type BackendName, type WeightFormat } from '@weft/core';
import {
  buildAttentionMetadata,
  loadWeights,
  PagedKVCache,
  QuantizationConfig,
  useCpuQuantKernels,
  type CpuKernelsOptions,
  scoped,
  traced,
  Tracer,
  traceState,
  type CausalLMRank,
  type ForwardInput,
  type IntermediateTensors,
} from '@weft/layers';
import type { DriverMessage, RankMessage, SampledToken, StepSeq } from './protocol.js';
import type { ModelModule } from './registry.js';
import { sampleToken, type TokenHistory } from './sampler.js';
import { usesPenalties, type SamplingParams } from './sampling-params.js';
import { choosePlanExecutor } from './plan-executors.js';
import { PlanRunner, type DevicePlanOption } from './plan-runner.js';
import { startDeferred, useDeferredBackend } from './rank-backend.js';

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

export async function runRank(ctx: RankContext, createModel: ModelFactory): Promise<void> {
  const args = ctx.args as RankArgs;
  const send = (m: RankMessage) => ctx.driver.send(m);
  const tracer = args.trace ? new Tracer(ctx.rank) : null;
  const state = tracer ? traceState(ctx.state, tracer) : ctx.state;
  if (args.deferredBackend) startDeferred();
  const model = await createModel(args.modelDir, state, args);
  const fmt = args.weightFormat;
  if (fmt && (fmt.quantization || fmt.dtype !== 'float32')) useCpuQuantKernels(args.cpuKernels ?? true);
  const onProgress = (loaded: number, total: number, name: string) => send({ type: 'progress', rank: ctx.rank, loaded, total, name });
  const choice = choosePlanExecutor(model, state, args);
  const useTfjsBackend = () => useDeferredBackend(args.deferredBackend, state.world.worldSize);
  if (!('plan' in choice)) await useTfjsBackend();
  const runner: RankRunner = 'plan' in choice ? new PlanRunner(model, state, tracer, choice.plan, choice.factory, useTfjsBackend) : new ModelRunner(model, state, tracer);
  const stepPath = 'plan' in choice ? `plan (${choice.name})` : `tfjs (${choice.reason})`;
  try {
    const weights = loadRankWeights(model, args, onProgress);
    const kvBytesPerBlock = model.kvCacheSpecs().reduce((a, s) => a + PagedKVCache.bytesPerBlock(s, args.blockSize), 0);
    send({ type: 'ready', rank: ctx.rank, unused: weights.unused, unquantized: weights.unquantized, weightBytes: weights.bytes, backend: args.deferredBackend ?? tf.getBackend(), stepPath, kvBytesPerBlock, slidingWindows: model.kvCacheSpecs().map((s) => s.slidingWindow ?? null) });
    for (;;) {
      const msg = (await ctx.driver.recv()) as DriverMessage | undefined;
      if (msg === undefined || msg.type === 'shutdown') break;
      if (msg.type === 'init-kv') {
        send({ type: 'kv-ready', rank: ctx.rank, kvBytes: await runner.initKVCaches(msg.numBlocks, msg.blockSize) });
        continue;
      }
      const result = await traced(tracer, `step ${msg.stepId}`, 'step', () => runner.step(msg));
      if (result) send({ type: 'result', stepId: msg.stepId, numTensors: tf.memory().numTensors, ...result });
      if (tracer) send({ type: 'trace', rank: ctx.rank, events: tracer.drain() });
    }
  } finally {
    runner.dispose();
  }
}

function loadRankWeights(model: CausalLMRank, args: RankArgs, onProgress: (l: number, t: number, n: string) => void) {
  const ckpt = Checkpoint.open(args.modelDir);
  try {
    const { unused, unquantized, bytes } = loadWeights({
      params: model.parameters(),
      checkpoint: ckpt,
      stacked: model.stackedParams,
      ignore: (n) => model.ignoreTensor(n),
      elsewhere: (n) => model.isElsewhere(n),
      onProgress,
      quantization: args.weightFormat ? new QuantizationConfig(args.weightFormat) : undefined,
    });
    return { unused, unquantized, bytes };
  } finally {
    ckpt.close();
  }
}

export type StepMsg = Extract<DriverMessage, { type: 'step' }>;
export type StepResult = { dpRank: number; sampled?: SampledToken[]; logits?: { rows: number; cols: number; data: Float32Array } };

/** One rank's device state: the model, its paged KV caches, the sampling state of its sequences. */
export class ModelRunner implements RankRunner {
  private caches: PagedKVCache[] = [];
  private blockSize = 16;
  private readonly seqs = new Map<number, SeqState>();

  constructor(
    readonly model: CausalLMRank,
    readonly state: ParallelState,
    private readonly tracer: Tracer | null,
  ) {}

  /** Allocate every layer's pool; returns the bytes taken. */
  initKVCaches(numBlocks: number, blockSize: number): number {
    for (const c of this.caches) c.dispose();
    this.blockSize = blockSize;
    this.caches = this.model.kvCacheSpecs().map((spec) => new PagedKVCache({ ...spec, numBlocks, blockSize }));
    this.model.bindKVCaches(this.caches);
    return this.caches.reduce((a, c) => a + c.bytesPerBlock * numBlocks, 0);
  }

  /** The sampling rank of its replica: TP rank 0 of the last stage holds the gathered logits. */
  private get isReporter(): boolean {
    return this.model.isLastStage && this.state.tp.rankInGroup === 0;
  }

  async step(msg: StepMsg): Promise<StepResult | null> {
    const dpRank = this.state.dp.rankInGroup;
    const reporter = this.isReporter;
    for (const id of msg.freed[dpRank] ?? []) this.seqs.delete(id);
    const seqs = msg.replicas[dpRank] ?? [];
    if (reporter) for (const s of seqs) if (s.start) this.seqs.set(s.seqId, startState(s.start));
    const numTokens = seqs.reduce((a, s) => a + s.tokens.length, 0);
    const empty = reporter ? { dpRank, sampled: [] } : null;
    if (this.state.dp.worldSize > 1 && this.model.needsDpLockstep) {
      // vLLM's coordinate_batch_across_dp: replicas agree on every replica's token count; a replica
      // with none runs a dummy batch so the expert-parallel collectives spanning replicas stay in step.
      const counts = await allGatherCounts(this.state, numTokens);
      if (counts.every((n) => n === 0)) return empty;
      if (numTokens === 0) {
        await traced(this.tracer, 'dummy batch', 'step', () => this.dummyForward());
        return empty;
      }
    } else if (numTokens === 0) {
      return empty;
    }
    return scoped(async () => {
      const useCache = msg.mode !== 'logits-all';
      const meta = buildAttentionMetadata(
        seqs.map((s) => ({ seqId: s.seqId, queryLen: s.tokens.length, contextLen: useCache ? s.contextLen : 0, blockTable: useCache ? s.blockTable : [] })),
        this.blockSize,
      );
      const inputIds = tf.tensor1d(seqs.flatMap((s) => s.tokens), 'int32');
      const positions = tf.tensor1d(seqs.flatMap((s) => s.tokens.map((_, i) => (useCache ? s.contextLen : 0) + i)), 'int32');
      const out = await this.forwardStage({ inputIds, positions, meta, useCache, tracer: this.tracer });
      if (out === null) return null;
      if (!useCache) {
        const logits = await traced(this.tracer, 'lm_head', 'compute', () => this.model.computeLogits(out));
        if (logits === null) return null;
        const [rows, cols] = logits.shape;
        return { dpRank, logits: { rows, cols, data: (await logits.data()) as Float32Array } };
      }
      // Only the last position of each sequence that samples needs logits.
      const sampling = seqs.map((s, i) => ({ s, row: meta.seqs[i]!.start + meta.seqs[i]!.queryLen - 1 })).filter((x) => x.s.sample);
      // Only non-final chunks: every rank of the replica sees the same step, so all skip the LM head.
      if (sampling.length === 0) return empty;
      const hidden = tf.gather(out, tf.tensor1d(sampling.map((x) => x.row), 'int32')) as tf.Tensor2D;
      const logits = await traced(this.tracer, 'lm_head', 'compute', () => this.model.computeLogits(hidden));
      if (logits === null) return null;
      const cols = logits.shape[1];
      const data = (await logits.data()) as Float32Array;
      const sampled = sampling.map(({ s }, i) => this.sample(s, data.subarray(i * cols, (i + 1) * cols)));
      return { dpRank, sampled };
    });
  }

  private sample(s: StepSeq, row: Float32Array): SampledToken {
    const st = this.seqs.get(s.seqId);
    if (!st) throw new Error(`rank: sequence ${s.seqId} sampled before it was started`);
    const hist: TokenHistory | null = st.history;
    const r = sampleToken(row, st.sampling, s.tokenIndex, hist);
    if (st.history) st.history.output.set(r.tokenId, (st.history.output.get(r.tokenId) ?? 0) + 1);
    const out: SampledToken = { seqId: s.seqId, tokenId: r.tokenId };
    if (r.logprob) out.logprob = r.logprob;
    if (st.sampling.returnLogits) out.logits = row.slice();
    return out;
  }

  /** This stage's forward: receive from the previous stage, send to the next; the last stage returns its hidden states. */
  private async forwardStage(input: ForwardInput): Promise<tf.Tensor2D | null> {
    const pp = this.state.pp;
    const intermediate = this.model.isFirstStage ? null : ((await pp.recvTensorDict(pp.rankInGroup - 1)) as unknown as IntermediateTensors);
    const out = await this.model.forward(input, intermediate);
    if (this.model.isLastStage) return out as tf.Tensor2D;
    await pp.sendTensorDict(out as unknown as Record<string, tf.Tensor>, pp.rankInGroup + 1);
    return null;
  }

  /** One token through every layer of this replica, no cache, nothing sampled (vLLM's dummy batch). */
  private dummyForward(): Promise<unknown> {
    return scoped(async () => {
      const meta = buildAttentionMetadata([{ seqId: -1, queryLen: 1, contextLen: 0 }], this.blockSize);
      const ids = tf.tensor1d([0], 'int32');
      await this.forwardStage({ inputIds: ids, positions: tf.tensor1d([0], 'int32'), meta, useCache: false, tracer: this.tracer });
      return null;
    });
  }

  dispose(): void {
    this.model.dispose();
    for (const c of this.caches) c.dispose();
    this.caches = [];
    this.seqs.clear();
  }
}

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
