/**
 * Rank entry of host-plan-tp.test.ts: this rank's shard of a fixture, its plan on the host executor against
 * its tfjs forward (both at the layout runRanks gave it: the all-reduces and the logits gather are plan
 * boundaries through the rank's groups); tp rank 0 returns the check, the others null.
 */
import type { RankContext } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import { hostFixtureCheck, useCpuQuantKernels, type ParityBound } from '@weft/layers';
import { registration } from './registration.js';

export interface HostRankCase {
  dir: string;
  file: string;
  format: WeightFormat;
  hf: ParityBound;
  tfjs: ParityBound;
}

export function main(ctx: RankContext): Promise<{ failures: string[]; line: string } | null> {
  const c = ctx.args as HostRankCase;
  useCpuQuantKernels(true);
  return hostFixtureCheck(c.dir, c, (d, s) => registration.createModel(d, s), { threads: 1 }, ctx.state);
}
