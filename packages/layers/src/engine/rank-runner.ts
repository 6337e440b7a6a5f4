/**
 * The loop each rank runs: build its share of the model, load its weights,
 * then execute the steps the driver broadcasts until told to stop.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState, RankContext } from '@weft/comm';
import { Checkpoint } from '@weft/core';
import { buildAttentionMetadata } from '../attention-metadata.js';
import { bindSequencePagedCaches, type SequenceBlockAllocator } from '../paged-sequence-blocks.js';
import { scoped } from '../scope.js';
import { loadWeights } from '../weight-loading.js';
import type { CausalLMRank, ForwardInput, IntermediateTensors } from './causal-lm.js';
import type { DriverMessage, RankMessage, StepSequence } from './protocol.js';
import { sampleToken } from './sampler.js';
import { Tracer, traced, traceState } from './tracer.js';

export interface RankArgs {
  modelDir: string;
  trace?: boolean;
  /** MoE token exchange under expert parallelism. */
  moeDispatch?: 'allgather' | 'alltoall';
  /** MLA models: cache the compressed latent (default) or full per-head K/V. */
  mlaKvCache?: 'latent' | 'full';
  /** Paged KV-cache bytes on this rank (default: see bindSequencePagedCaches). */
  kvCacheBytes?: number;
}

export type ModelFactory = (dir: string, state: ParallelState, args: RankArgs) => CausalLMRank | Promise<CausalLMRank>;

export async function runRank(ctx: RankContext, createModel: ModelFactory): Promise<void> {
  const args = ctx.args as RankArgs;
  const send = (m: RankMessage) => ctx.driver.send(m);
  const tracer = args.trace ? new Tracer(ctx.rank) : null;
  const state = tracer ? traceState(ctx.state, tracer) : ctx.state;
  const model = await createModel(args.modelDir, state, args);
  const weightBytes = loadRankWeights(model, args.modelDir, (loaded, total, name) =>
    send({ type: 'progress', rank: ctx.rank, loaded, total, name }),
  );
  // Until @weft/engine's block manager drives the cache: each rank allocates blocks per sequence itself.
  const kv = bindSequencePagedCaches(model, { kvCacheBytes: args.kvCacheBytes });
  send({ type: 'ready', rank: ctx.rank, unused: weightBytes.unused, weightBytes: weightBytes.bytes, backend: tf.getBackend() });
  try {
    for (;;) {
      const msg = (await ctx.driver.recv()) as DriverMessage;
      if (msg.type === 'shutdown') break;
      if (msg.type === 'free') {
        for (const id of msg.seqIds) kv.allocator.freeSequence(id);
        continue;
      }
      const result = await traced(tracer, `step ${msg.stepId}`, 'step', () => runStep(model, state, msg, tracer, kv.allocator));
      if (result) send({ type: 'result', stepId: msg.stepId, numTensors: tf.memory().numTensors, ...result });
      if (tracer) send({ type: 'trace', rank: ctx.rank, events: tracer.drain() });
    }
  } finally {
    model.dispose();
    kv.dispose();
  }
}

function loadRankWeights(model: CausalLMRank, dir: string, onProgress: (l: number, t: number, n: string) => void) {
  const ckpt = Checkpoint.open(dir);
  try {
    const { unused } = loadWeights({
      params: model.parameters(),
      checkpoint: ckpt,
      stacked: model.stackedParams,
      ignore: (n) => model.ignoreTensor(n),
      elsewhere: (n) => model.isElsewhere(n),
      onProgress,
    });
    const bytes = model.parameters().reduce((a, p) => a + p.tensor.size * 4, 0);
    return { unused, bytes };
  } finally {
    ckpt.close();
  }
}

type StepMsg = Extract<DriverMessage, { type: 'step' }>;
type StepResult = { dpRank: number; tokens?: number[]; logits?: { rows: number; cols: number; data: Float32Array } };

async function runStep(
  model: CausalLMRank,
  state: ParallelState,
  msg: StepMsg,
  tracer: Tracer | null,
  blocks: SequenceBlockAllocator,
): Promise<StepResult | null> {
  const dpRank = state.dp.rankInGroup;
  // The replica's last stage, TP rank 0, holds the gathered logits and answers the driver.
  const reporter = model.isLastStage && state.tp.rankInGroup === 0;
  const seqs = msg.replicas[dpRank] ?? [];
  const numTokens = seqs.reduce((a, s) => a + s.tokens.length, 0);
  if (state.dp.worldSize > 1 && model.needsDpLockstep) {
    // vLLM's coordinate_batch_across_dp: replicas agree on every replica's token count; a replica
    // with none runs a dummy batch so the expert-parallel collectives spanning replicas stay in step.
    const counts = await allGatherCounts(state, numTokens);
    if (counts.every((n) => n === 0)) return reporter ? { dpRank, tokens: [] } : null;
    if (numTokens === 0) {
      await traced(tracer, 'dummy batch', 'step', () => dummyForward(model, state, tracer));
      return reporter ? { dpRank, tokens: [] } : null;
    }
  } else if (numTokens === 0) {
    return reporter ? { dpRank, tokens: [] } : null;
  }
  return scoped(async () => {
    const useCache = msg.mode !== 'logits-all';
    const meta = buildAttentionMetadata(
      seqs.map((s) => ({
        seqId: s.seqId,
        queryLen: s.tokens.length,
        contextLen: useCache ? s.contextLen : 0,
        blockTable: useCache ? blocks.tableFor(s.seqId, s.contextLen + s.tokens.length) : [],
      })),
      blocks.blockSize,
    );
    const inputIds = tf.tensor1d(seqs.flatMap((s) => s.tokens), 'int32');
    const positions = tf.tensor1d(positionsOf(seqs, useCache), 'int32');
    const out = await forwardStage(model, state, { inputIds, positions, meta, useCache, tracer });
    if (out === null) return null;
    let hidden = out;
    if (msg.mode !== 'logits-all') {
      // Only each sequence's last position is sampled: compute logits for those rows alone.
      const last = meta.seqs.map((s) => s.start + s.queryLen - 1);
      hidden = tf.gather(hidden, tf.tensor1d(last, 'int32')) as tf.Tensor2D;
    }
    const logits = await traced(tracer, 'lm_head', 'compute', () => model.computeLogits(hidden));
    if (logits === null) return null;
    const [rows, cols] = logits.shape;
    const data = (await logits.data()) as Float32Array;
    if (msg.mode !== 'sample') return { dpRank, logits: { rows, cols, data } };
    const tokens = seqs.map((s, i) => sampleToken(data.subarray(i * cols, (i + 1) * cols), s.sampling, s.contextLen + s.tokens.length));
    return msg.returnLogits ? { dpRank, tokens, logits: { rows, cols, data } } : { dpRank, tokens };
  });
}

/** This stage's forward: receive from the previous stage, send to the next; the last stage returns its hidden states. */
async function forwardStage(model: CausalLMRank, state: ParallelState, input: ForwardInput): Promise<tf.Tensor2D | null> {
  const pp = state.pp;
  const intermediate = model.isFirstStage ? null : ((await pp.recvTensorDict(pp.rankInGroup - 1)) as unknown as IntermediateTensors);
  const out = await model.forward(input, intermediate);
  if (model.isLastStage) return out as tf.Tensor2D;
  await pp.sendTensorDict(out as unknown as Record<string, tf.Tensor>, pp.rankInGroup + 1);
  return null;
}

async function allGatherCounts(state: ParallelState, n: number): Promise<number[]> {
  const mine = tf.tensor1d([n], 'int32');
  const all = await state.dp.allGather(mine, 0);
  const counts = Array.from(await all.data());
  tf.dispose([mine, all]);
  return counts;
}

/** One token through every layer of this replica, no cache, nothing sampled (vLLM's dummy batch). */
function dummyForward(model: CausalLMRank, state: ParallelState, tracer: Tracer | null): Promise<unknown> {
  return scoped(async () => {
    const meta = buildAttentionMetadata([{ seqId: -1, queryLen: 1, contextLen: 0 }]);
    const ids = tf.tensor1d([0], 'int32');
    return forwardStage(model, state, { inputIds: ids, positions: tf.tensor1d([0], 'int32'), meta, useCache: false, tracer }).then(() => null);
  });
}

function positionsOf(seqs: StepSequence[], useCache: boolean): number[] {
  return seqs.flatMap((s) => s.tokens.map((_, i) => (useCache ? s.contextLen : 0) + i));
}
