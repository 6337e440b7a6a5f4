/**
 * The device plan against the tfjs path of the same loaded rank: one schedule
 * of steps (prefills, chunked prefills, batched decodes over paged caches)
 * run through both — `forward` + `computeLogits` on tfjs caches, and an
 * executor over `recordPlan()` — returning each step's sampled rows' logits
 * from both. For tests of executors and of layers' recordings: a plan that
 * records different work gives different logits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GroupCoordinator, SoloCommunicator, type ParallelState } from '@weft/comm';
import { resolveParallelConfig } from '@weft/core';
import { buildAttentionMetadata, positionsOf, type AttentionMetadata } from './attention-metadata.js';
import type { CausalLMRank } from './engine/causal-lm.js';
import { PagedKVCache } from './paged-kv-cache.js';
import type { PlanExecutor } from './plan/executor.js';
import type { DevicePlan } from './plan/builder.js';

/** A tp 1, pp 1 rank's parallel state in this thread (groups of one: every collective a no-op). */
export function soloParallelState(): ParallelState {
  const g = (kind: string) => new GroupCoordinator({ rank: 0, ranks: [0], uniqueName: `${kind}:0`, cpuGroup: new SoloCommunicator(`${kind}:0`) });
  return { rank: 0, worldSize: 1, config: resolveParallelConfig({}), world: g('world'), tp: g('tp'), pp: g('pp'), dp: g('dp'), ep: g('ep') };
}

/** One step: each listed sequence's new tokens (its context is what earlier steps gave it); its last row is sampled. */
export type ParityStep = { seqId: number; tokens: number[] }[];

export interface ParityRun {
  /** Per step, `[S, vocab]` logits of the sampled rows in step order, from the plan (tp rank 0; null elsewhere). */
  plan: (Float32Array | null)[];
  tfjs: (Float32Array | null)[];
  vocab: number;
}

/**
 * Run `steps` through the rank's tfjs forward and through `makeExecutor(recordPlan())`, block size `blockSize`
 * (each sequence gets its own blocks, in order of first appearance). Every rank of the model's groups must call it.
 */
export async function runPlanAndTfjs(
  model: CausalLMRank & { recordPlan(): DevicePlan },
  makeExecutor: (plan: DevicePlan) => PlanExecutor | Promise<PlanExecutor>,
  steps: ParityStep[],
  blockSize = 4,
): Promise<ParityRun> {
  const context = new Map<number, number>();
  const tables = new Map<number, number[]>();
  let nextBlock = 0;
  const totalTokens = new Map<number, number>();
  for (const step of steps) for (const s of step) totalTokens.set(s.seqId, (totalTokens.get(s.seqId) ?? 0) + s.tokens.length);
  for (const [seqId, n] of totalTokens) tables.set(seqId, Array.from({ length: Math.ceil(n / blockSize) }, () => nextBlock++));
  const numBlocks = nextBlock;

  const plan = model.recordPlan();
  const executor = await makeExecutor(plan);
  await executor.initCaches(numBlocks, blockSize);
  const caches = model.kvCacheSpecs().map((spec) => new PagedKVCache({ ...spec, numBlocks, blockSize }));
  model.bindKVCaches(caches);
  const run: ParityRun = { plan: [], tfjs: [], vocab: plan.vocabSize };
  try {
    for (const step of steps) {
      const meta: AttentionMetadata = buildAttentionMetadata(
        step.map((s) => ({ seqId: s.seqId, queryLen: s.tokens.length, contextLen: context.get(s.seqId) ?? 0, blockTable: tables.get(s.seqId)! })),
        blockSize,
      );
      const tokenIds = Int32Array.from(step.flatMap((s) => s.tokens));
      const positions = positionsOf(meta);
      const sampledRows = Int32Array.from(meta.seqs.map((s) => s.start + s.queryLen - 1));
      const out = await executor.step({ tokenIds, positions, seqs: meta.seqs, blockSize, sampledRows });
      run.plan.push(out.logits ? firstColumns(out.logits, sampledRows.length, plan.vocabSize) : null);
      run.tfjs.push(await tfjsLogits(model, tokenIds, positions, meta, sampledRows));
      for (const s of step) context.set(s.seqId, (context.get(s.seqId) ?? 0) + s.tokens.length);
    }
  } finally {
    executor.dispose();
    for (const c of caches) c.dispose();
  }
  return run;
}

async function tfjsLogits(model: CausalLMRank, ids: Int32Array, positions: Int32Array, meta: AttentionMetadata, rows: Int32Array): Promise<Float32Array | null> {
  const inputIds = tf.tensor1d(ids, 'int32');
  const pos = tf.tensor1d(positions, 'int32');
  try {
    const hidden = (await model.forward({ inputIds, positions: pos, meta, useCache: true }, null)) as tf.Tensor2D;
    const picked = tf.tidy(() => tf.gather(hidden, tf.tensor1d(rows, 'int32')) as tf.Tensor2D);
    hidden.dispose();
    const logits = await model.computeLogits(picked);
    picked.dispose();
    if (!logits) return null;
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    return data;
  } finally {
    tf.dispose([inputIds, pos]);
  }
}

function firstColumns(x: Float32Array, rows: number, cols: number): Float32Array {
  const width = x.length / rows;
  if (width === cols) return x;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * width, r * width + cols), r * cols);
  return out;
}

