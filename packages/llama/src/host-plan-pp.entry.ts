/**
 * Rank entry of host-plan-pp.test.ts: a fixture at pp 2, each stage's plan on its own host executor; stage 0 hands
 * `{hidden_states, residual}` to stage 1 through the pp group (as the plan runner does), stage 1 returns its sampled
 * rows' logits per step of layers' fixtureSchedule (stage 0 null).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '@weft/comm';
import { Checkpoint, type WeightFormat } from '@weft/core';
import { buildAttentionMetadata, fixtureSchedule, HostPlanExecutor, loadWeights, positionsOf, QuantizationConfig, type FixtureCase } from '@weft/layers';
import { registration } from './registration.js';

export interface PpCase {
  dir: string;
  cases: FixtureCase[];
  format: WeightFormat;
}

export async function main(ctx: RankContext): Promise<number[][] | null> {
  const c = ctx.args as PpCase;
  const pp = ctx.state.pp;
  const model = registration.createModel(c.dir, ctx.state);
  const ckpt = Checkpoint.open(c.dir);
  try {
    loadWeights({ params: model.parameters(), checkpoint: ckpt, stacked: model.stackedParams, ignore: (n) => model.ignoreTensor(n), elsewhere: (n) => model.isElsewhere(n), quantization: new QuantizationConfig(c.format) });
  } finally {
    ckpt.close();
  }
  const bs = 4;
  const { steps } = fixtureSchedule(c.cases);
  const tables = c.cases.map((k, i) => Array.from({ length: Math.ceil(k.input_ids.length / bs) }, (_, b) => i * 8 + b));
  const ex = new HostPlanExecutor(model.recordPlan(), { threads: 1 });
  ex.initCaches(8 * c.cases.length, bs);
  const context = c.cases.map(() => 0);
  const out: number[][] = [];
  try {
    for (const step of steps) {
      const meta = buildAttentionMetadata(step.map((s) => ({ seqId: s.seqId, queryLen: s.tokens.length, contextLen: context[s.seqId]!, blockTable: tables[s.seqId]! })), bs);
      const T = meta.seqs.reduce((a, s) => a + s.queryLen, 0);
      const input = {
        tokenIds: Int32Array.from(step.flatMap((s) => s.tokens)),
        positions: positionsOf(meta),
        seqs: meta.seqs,
        blockSize: bs,
        sampledRows: Int32Array.from(meta.seqs.map((s) => s.start + s.queryLen - 1)),
      };
      if (pp.rankInGroup === 0) {
        const r = await ex.step(input);
        const H = r.hidden!.length / T;
        const d = { hidden_states: tf.tensor2d(r.hidden!, [T, H]), residual: tf.tensor2d(r.residual!, [T, H]) };
        await pp.sendTensorDict(d, 1);
        tf.dispose(Object.values(d));
      } else {
        const d = (await pp.recvTensorDict(0)) as unknown as { hidden_states: tf.Tensor; residual: tf.Tensor };
        const r = await ex.step({ ...input, hidden: (await d.hidden_states.data()) as Float32Array, residual: (await d.residual.data()) as Float32Array });
        tf.dispose([d.hidden_states, d.residual]);
        out.push(Array.from(r.logits!));
      }
      for (const s of step) context[s.seqId]! += s.tokens.length;
    }
  } finally {
    ex.dispose();
    model.dispose();
  }
  return pp.rankInGroup === 0 ? null : out;
}
