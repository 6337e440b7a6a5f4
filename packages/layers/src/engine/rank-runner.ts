/**
 * The loop each rank runs: build its share of the model, load its weights,
 * then execute the steps the driver broadcasts until told to stop.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState, RankContext } from '@weft/comm';
import { Checkpoint } from '@weft/core';
import { buildAttentionMetadata } from '../attention-metadata.js';
import { scoped } from '../scope.js';
import { loadWeights } from '../weight-loading.js';
import type { CausalLMRank, IntermediateTensors } from './causal-lm.js';
import type { DriverMessage, RankMessage, StepSequence } from './protocol.js';
import { sampleToken } from './sampler.js';
import { Tracer, traced, traceState } from './tracer.js';

export interface RankArgs {
  modelDir: string;
  trace?: boolean;
}

export type ModelFactory = (dir: string, state: ParallelState) => CausalLMRank | Promise<CausalLMRank>;

export async function runRank(ctx: RankContext, createModel: ModelFactory): Promise<void> {
  const args = ctx.args as RankArgs;
  const send = (m: RankMessage) => ctx.driver.send(m);
  const tracer = args.trace ? new Tracer(ctx.rank) : null;
  const state = tracer ? traceState(ctx.state, tracer) : ctx.state;
  const model = await createModel(args.modelDir, state);
  const weightBytes = loadRankWeights(model, args.modelDir, (loaded, total, name) =>
    send({ type: 'progress', rank: ctx.rank, loaded, total, name }),
  );
  send({ type: 'ready', rank: ctx.rank, unused: weightBytes.unused, weightBytes: weightBytes.bytes, backend: tf.getBackend() });
  try {
    for (;;) {
      const msg = (await ctx.driver.recv()) as DriverMessage;
      if (msg.type === 'shutdown') break;
      if (msg.type === 'free') {
        for (const id of msg.seqIds) model.freeSequence(id);
        continue;
      }
      const result = await traced(tracer, `step ${msg.stepId}`, 'step', () => runStep(model, state, msg, tracer));
      if (result) send({ type: 'result', stepId: msg.stepId, ...result });
      if (tracer) send({ type: 'trace', rank: ctx.rank, events: tracer.drain() });
    }
  } finally {
    model.dispose();
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

async function runStep(
  model: CausalLMRank,
  state: ParallelState,
  msg: StepMsg,
  tracer: Tracer | null,
): Promise<{ tokens?: number[]; logits?: { rows: number; cols: number; data: Float32Array } } | null> {
  return scoped(async () => {
    const useCache = msg.mode !== 'logits-all';
    const meta = buildAttentionMetadata(
      msg.seqs.map((s) => ({ seqId: s.seqId, queryLen: s.tokens.length, contextLen: useCache ? s.contextLen : 0 })),
    );
    const inputIds = tf.tensor1d(msg.seqs.flatMap((s) => s.tokens), 'int32');
    const positions = tf.tensor1d(positionsOf(msg.seqs, useCache), 'int32');
    const pp = state.pp;
    const intermediate = model.isFirstStage ? null : ((await pp.recvTensorDict(pp.rankInGroup - 1)) as unknown as IntermediateTensors);
    const out = await model.forward({ inputIds, positions, meta, useCache, tracer }, intermediate);
    if (!model.isLastStage) {
      await pp.sendTensorDict(out as unknown as Record<string, tf.Tensor>, pp.rankInGroup + 1);
      return null;
    }
    let hidden = out as tf.Tensor2D;
    if (msg.mode !== 'logits-all') {
      // Only each sequence's last position is sampled: compute logits for those rows alone.
      const last = meta.seqs.map((s) => s.start + s.queryLen - 1);
      hidden = tf.gather(hidden, tf.tensor1d(last, 'int32')) as tf.Tensor2D;
    }
    const logits = await traced(tracer, 'lm_head', 'compute', () => model.computeLogits(hidden));
    if (logits === null) return null;
    const [rows, cols] = logits.shape;
    const data = (await logits.data()) as Float32Array;
    if (msg.mode !== 'sample') return { logits: { rows, cols, data } };
    const tokens = msg.seqs.map((s, i) =>
      sampleToken(data.subarray(i * cols, (i + 1) * cols), s.sampling, s.contextLen + s.tokens.length),
    );
    return msg.returnLogits ? { tokens, logits: { rows, cols, data } } : { tokens };
  });
}

function positionsOf(seqs: StepSequence[], useCache: boolean): number[] {
  return seqs.flatMap((s) => s.tokens.map((_, i) => (useCache ? s.contextLen : 0) + i));
}
