/**
 * Rank entry of host-plan-tp.test.ts: this rank's shard of a DeepSeek fixture (heads split over TP; experts
 * TP-split, or whole under EP), its plan on the host executor against its tfjs forward at the layout runRanks
 * gave it (all-reduces, the logits gather and, under EP across DP replicas, the MoE token exchange as plan
 * boundaries). With several DP replicas the odd ones run only the fixture's longest prompt, so the replicas
 * exchange different tokens. tp rank 0 of each replica returns its check, the others null.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RankContext } from '@weft/comm';
import { Checkpoint, type WeightFormat } from '@weft/core';
import {
  fixturePlanParity,
  HostPlanExecutor,
  loadWeights,
  parityReport,
  QuantizationConfig,
  useCpuQuantKernels,
  type FixtureCase,
  type ParityBound,
} from '@weft/layers';
import { registration, type DeepseekRankOptions } from './registration.js';

export interface DeepseekRankCase {
  dir: string;
  file: string;
  format: WeightFormat;
  hf: ParityBound;
  tfjs: ParityBound;
  options: DeepseekRankOptions;
}

export async function main(ctx: RankContext): Promise<{ failures: string[]; line: string; localExperts: number } | null> {
  const c = ctx.args as DeepseekRankCase;
  useCpuQuantKernels(true);
  const model = registration.createModel(c.dir, ctx.state, c.options);
  try {
    const ckpt = Checkpoint.open(c.dir);
    try {
      const { unused } = loadWeights({
        params: model.parameters(),
        checkpoint: ckpt,
        stacked: model.stackedParams,
        ignore: (n) => model.ignoreTensor(n),
        elsewhere: (n) => model.isElsewhere(n),
        quantization: new QuantizationConfig(c.format),
      });
      if (unused.length > 0) throw new Error(`unused checkpoint tensors: ${unused.join(', ')}`);
    } finally {
      ckpt.close();
    }
    const cases = (JSON.parse(readFileSync(join(c.dir, c.file), 'utf8')) as { cases: FixtureCase[] }).cases;
    // Odd replicas: the longest prompt alone (other token counts in every step, the same number of steps).
    const mine = ctx.state.dp.rankInGroup % 2 === 1 ? [cases.reduce((a, b) => (b.input_ids.length > a.input_ids.length ? b : a))] : cases;
    const r = await fixturePlanParity(model, mine, (plan) => new HostPlanExecutor(plan, { threads: 1 }));
    if (!r || ctx.state.tp.rankInGroup !== 0) return null;
    const { failures, line } = parityReport(r, c);
    const localExperts = model.parameters().filter((p) => /\.mlp\.experts\.\d+\.down_proj/.test(p.name) && p.name.startsWith('model.layers.1.')).length;
    return { failures, line: `dp rank ${ctx.state.dp.rankInGroup}: ${line}`, localExperts };
  } finally {
    model.dispose();
  }
}
