/**
 * Rank entry of webgpu-plan-tp.test.ts: this rank's shard of a fixture, its plan on the WebGPU executor (its
 * own device; the all-reduces and the logits gather are plan boundaries through the rank's groups) against
 * its tfjs forward on the cpu backend; tp rank 0 returns the check, the others null.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { RankContext } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import { webgpuFixtureCheck, type ParityBound } from '@weft/layers';
import { registration } from './registration.js';

export interface WebGpuRankCase {
  dir: string;
  file: string;
  format: WeightFormat;
  hf: ParityBound;
  tfjs: ParityBound;
}

export async function main(ctx: RankContext): Promise<{ failures: string[]; line: string } | null> {
  const c = ctx.args as WebGpuRankCase;
  // The rank started on webgpu (Dawn installed); the reference forward runs on the cpu backend.
  await tf.setBackend('cpu');
  return webgpuFixtureCheck(c.dir, c, (d, s) => registration.createModel(d, s), undefined, ctx.state);
}
