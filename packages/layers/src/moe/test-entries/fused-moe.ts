/**
 * Rank entry for the FusedMoE tests: each rank builds the MoE block for its
 * place in the job (TP-split experts, or its EP experts), fills it from the
 * Hugging Face-named checkpoint with the strict loader, and runs its DP
 * replica's tokens. The test compares with the dense single-rank block.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '@weft/comm';
import { loadWeights } from '../../weight-loading.js';
import { FUSED_MOE_STACKED_PARAMS, FusedMoE, fusedMoEGroups } from '../fused-moe.js';
import { caseHidden, caseLogits, memoryCheckpoint, moeCheckpoint, PREFIX, type MoECase } from './reference.js';

export interface CaseResult {
  out: number[];
  /** Expert checkpoint tensors this rank read. */
  expertReads: number;
  localExperts: number[];
  unused: string[];
}

export async function main(ctx: RankContext): Promise<{ results: CaseResult[]; leaked: number }> {
  const cases = ctx.args as MoECase[];
  const before = tf.memory().numTensors;
  const results: CaseResult[] = [];
  for (const c of cases) results.push(await runCase(c, ctx));
  return { results, leaked: tf.memory().numTensors - before };
}

async function runCase(c: MoECase, ctx: RankContext): Promise<CaseResult> {
  const groups = fusedMoEGroups(ctx.state);
  const moe = new FusedMoE({
    prefix: PREFIX,
    hiddenSize: c.H,
    intermediateSize: c.I,
    numExperts: c.E,
    routing: {
      topK: c.topK,
      scoring: c.scoring,
      method: c.method,
      nGroup: c.nGroup,
      topkGroup: c.topkGroup,
      renormalize: c.renormalize,
      routedScalingFactor: c.scale,
    },
    correctionBias: c.bias,
    numSharedExperts: c.nShared,
    ...groups,
    dispatch: c.dispatch,
    placement: c.placement,
    reduceResults: c.reduceResults,
  });
  const ckpt = memoryCheckpoint(moeCheckpoint(c));
  const { unused } = loadWeights({
    params: moe.parameters(),
    checkpoint: ckpt,
    stacked: [...FUSED_MOE_STACKED_PARAMS],
    elsewhere: (n) => moe.isElsewhere(n),
  });
  const replica = ctx.state.dp.rankInGroup;
  const T = c.tokens[replica]!;
  const x = tf.tensor(caseHidden(c, replica).data, [T, c.H]) as tf.Tensor2D;
  const logits = c.useGate ? undefined : (tf.tensor(caseLogits(c, replica).data, [T, c.E]) as tf.Tensor2D);
  const y = await moe.forward(x, logits);
  // Unreduced, the TP peers' outputs must sum to the block's output.
  const full = c.reduceResults === false ? await ctx.state.tp.allReduce(y) : y;
  const out = Array.from(await full.data());
  for (const t of [x, logits, y, full]) t?.dispose();
  moe.dispose();
  return {
    out,
    expertReads: new Set(ckpt.touched.filter((n) => n.includes('.experts.'))).size,
    localExperts: moe.expertMap.globalIds,
    unused,
  };
}
