/**
 * Rank entry of qwen3-moe-plan-tp.test.ts: this rank's shard of a Qwen3-MoE fixture (experts TP-split, or whole
 * under EP), its plan on the host executor against its tfjs forward at the layout runRanks gave it; tp rank 0
 * returns the check, the others null.
 */
import type { RankContext } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import { hostFixtureCheck, useCpuQuantKernels, type ParityBound } from '@weft/layers';
import { registration } from './registration.js';

export interface MoeRankCase {
  dir: string;
  file: string;
  format: WeightFormat;
  hf: ParityBound;
  tfjs: ParityBound;
  moeDispatch?: 'allgather' | 'alltoall';
}

export function main(ctx: RankContext): Promise<{ failures: string[]; line: string } | null> {
  const c = ctx.args as MoeRankCase;
  useCpuQuantKernels(true);
  return hostFixtureCheck(c.dir, c, (d, s) => registration.createModel(d, s, { moeDispatch: c.moeDispatch }), { threads: 1 }, ctx.state);
}
