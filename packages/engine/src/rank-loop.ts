/**
 * The loop each rank runs (vLLM's worker + GPU model runner): build its share
 * of the model, load its weights, report how many bytes a KV block takes here,
 * allocate the paged KV caches the driver sizes, then execute the steps the
 * driver broadcasts until told to stop, on the device plan (PlanRunner) or the tfjs forward (ModelRunner).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '@weft/comm';
import { Checkpoint } from '@weft/core';
import { LinearWeight, loadWeights, PagedKVCache, QuantizationConfig, useCpuQuantKernels, traced, Tracer, traceState, type CausalLMRank } from '@weft/layers';
import type { DriverMessage, RankMessage } from './protocol.js';
import { useDeferredBackend } from './rank-backend.js';
import { ModelRunner } from './model-runner.js';
import { choosePlanExecutor } from './plan-executors.js';
import { PlanRunner } from './plan-runner.js';
import type { ModelFactory, RankArgs, RankRunner } from './rank-runner.js';

export async function runRank(ctx: RankContext, createModel: ModelFactory): Promise<void> {
  const args = ctx.args as RankArgs;
  const send = (m: RankMessage) => ctx.driver.send(m);
  const tracer = args.trace ? new Tracer(ctx.rank) : null;
  const state = tracer ? traceState(ctx.state, tracer) : ctx.state;
  const model = await createModel(args.modelDir, state, args);
  const fmt = args.weightFormat;
  if (fmt && (fmt.quantization || fmt.dtype !== 'float32')) useCpuQuantKernels(args.cpuKernels ?? true);
  const onProgress = (loaded: number, total: number, name: string) => send({ type: 'progress', rank: ctx.rank, loaded, total, name });
  const choice = choosePlanExecutor(model, state, args);
  // The host executor multiplies fp32 weights as they are in the checkpoint, [out, in]: held so, its upload keeps no
  // transposed copy (an fp32 LM head beside int4 layers: 0.26 GB for TinyLlama).
  if ('plan' in choice && choice.name === 'host') for (const p of model.parameters()) if (p instanceof LinearWeight) p.holdRowMajor();
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
