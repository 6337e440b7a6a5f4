/**
 * The timing loop of the device-plan benches (cpu-plan.ts, cpu-plan-deepseek.ts): one loaded rank, its host
 * executor (`recordPlan()` → HostPlanExecutor, each op timed by class) against its tfjs forward with its own
 * paged caches. `batch` sequences of `context` tokens are prefilled in one step, then `steps` decode steps of
 * one token a sequence run; the two paths alternate step by step, so that both see the same load on a shared
 * machine. The first two decode steps are warm-up.
 */
import * as tf from '@tensorflow/tfjs-core';
import { buildAttentionMetadata, HostPlanExecutor, PagedKVCache, positionsOf, type CausalLMRank, type PlanOp } from '@weft/layers';

export interface PlanTimingOptions {
  batch: number;
  context: number;
  steps: number;
  threads: number;
  vocab: number;
  /** The class an op's time is filed under. */
  opClass(op: PlanOp): string;
}

export interface PlanTiming {
  hostPrefillMs: number;
  tfjsPrefillMs: number;
  /** ms per timed decode step. */
  hostDecode: number[];
  tfjsDecode: number[];
  /** Per op class, its ms summed over each timed decode step. */
  perClass: Map<string, number[]>;
}

const WARMUP = 2;

export async function timeHostAgainstTfjs(model: CausalLMRank & { recordPlan(): ReturnType<NonNullable<CausalLMRank['recordPlan']>> }, o: PlanTimingOptions): Promise<PlanTiming> {
  const { batch: B, context: C, steps: N } = o;
  const blockSize = 16;
  const perSeq = Math.ceil((C + N + 4) / blockSize);
  const numBlocks = B * perSeq;
  const tables = Array.from({ length: B }, (_, b) => Array.from({ length: perSeq }, (_, i) => b * perSeq + i));
  const metaAt = (ctx: number, q: number) => buildAttentionMetadata(tables.map((blockTable, seqId) => ({ seqId, queryLen: q, contextLen: ctx, blockTable })), blockSize);
  const lastRows = (q: number) => Int32Array.from({ length: B }, (_, b) => b * q + q - 1);
  const ids = (n: number) => Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % o.vocab);

  const perClass = new Map<string, number[]>();
  let stepIndex = -1;
  const ex = new HostPlanExecutor(model.recordPlan(), {
    threads: o.threads,
    profile: (op, ms) => {
      if (stepIndex < 0) return;
      const list = perClass.get(o.opClass(op)) ?? [];
      list[stepIndex] = (list[stepIndex] ?? 0) + ms;
      perClass.set(o.opClass(op), list);
    },
  });
  ex.initCaches(numBlocks, blockSize);
  const caches = model.kvCacheSpecs().map((sp) => new PagedKVCache({ ...sp, numBlocks, blockSize }));
  model.bindKVCaches(caches);
  try {
    const hostStep = async (ctx: number, q: number) => {
      const meta = metaAt(ctx, q);
      const t0 = performance.now();
      await ex.step({ tokenIds: ids(B * q), positions: positionsOf(meta), seqs: meta.seqs, blockSize, sampledRows: lastRows(q) });
      return performance.now() - t0;
    };
    const tfjsStep = async (ctx: number, q: number) => {
      const meta = metaAt(ctx, q);
      const inputIds = tf.tensor1d(ids(B * q), 'int32');
      const positions = tf.tensor1d(positionsOf(meta), 'int32');
      const t0 = performance.now();
      const hidden = (await model.forward({ inputIds, positions, meta, useCache: true }, null)) as tf.Tensor2D;
      const last = tf.gather(hidden, tf.tensor1d(lastRows(q), 'int32')) as tf.Tensor2D;
      const logits = await model.computeLogits(last);
      await logits!.data();
      const ms = performance.now() - t0;
      tf.dispose([inputIds, positions, hidden, last, logits!]);
      return ms;
    };
    const hostPrefillMs = await hostStep(0, C);
    const tfjsPrefillMs = await tfjsStep(0, C);
    const hostDecode: number[] = [];
    const tfjsDecode: number[] = [];
    for (let i = 0; i < N; i++) {
      stepIndex = i >= WARMUP ? i - WARMUP : -1;
      const h = await hostStep(C + i, 1);
      const t = await tfjsStep(C + i, 1);
      if (i >= WARMUP) {
        hostDecode.push(h);
        tfjsDecode.push(t);
      }
    }
    return { hostPrefillMs, tfjsPrefillMs, hostDecode, tfjsDecode, perClass };
  } finally {
    ex.dispose();
    for (const c of caches) c.dispose();
  }
}
