/**
 * Rank entry of host-plan-tp.test.ts: this rank's shard of a DeepSeek fixture (heads split over TP; experts
 * TP-split, or whole under EP), its plan on the host executor against its tfjs forward at the layout runRanks
 * gave it (all-reduces and the logits gather as plan boundaries); tp rank 0 returns the check, the others null.
 */
import type { RankContext } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import { hostFixtureCheck, useCpuQuantKernels, type ParityBound } from '@weft/layers';
import { registration, type DeepseekRankOptions } from './registration.js';

export interface DeepseekRankCase {
  dir: string;
  file: string;
  format: WeightFormat;
  hf: ParityBound;
  tfjs: ParityBound;
  options: DeepseekRankOptions;
  /** Only say why this rank cannot record a plan (`planUnsupported()`), as `line`. */
  whyUnsupported?: boolean;
}

export function main(ctx: RankContext): Promise<{ failures: string[]; line: string } | null> {
  const c = ctx.args as DeepseekRankCase;
  if (c.whyUnsupported) {
    const model = registration.createModel(c.dir, ctx.state, c.options);
    const line = model.planUnsupported() ?? 'supported';
    model.dispose();
    return Promise.resolve({ failures: [], line });
  }
  useCpuQuantKernels(true);
  return hostFixtureCheck(c.dir, c, (d, s) => registration.createModel(d, s, c.options), { threads: 1 }, ctx.state);
}
