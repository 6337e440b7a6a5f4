/**
 * Rank entry of the families' WebGPU tensor-parallel tests (runRanks with backend webgpu): this rank's shard
 * of a fixture, built by the family's registration (its module URL in the case), its plan on the WebGPU
 * executor (its own device; all-reduces and the logits gather as plan boundaries through the rank's groups)
 * against its tfjs forward on the cpu backend; tp rank 0 returns the check, the others null.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { ParallelState, RankContext } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import type { CausalLMRank } from '../../engine/causal-lm.js';
import type { ParityBound } from '../host/fixture-plan-parity.js';
import { webgpuFixtureCheck } from './webgpu-fixture-check.js';

export interface FixtureRankCase {
  dir: string;
  file: string;
  format: WeightFormat;
  hf: ParityBound;
  tfjs: ParityBound;
  /** URL of the module exporting the family's `registration`. */
  registration: string;
  /** Its createModel options (e.g. DeepSeek's `mlaKvCache`). */
  options?: Record<string, unknown>;
}

interface Registration {
  createModel(dir: string, state: ParallelState, opts?: Record<string, unknown>): CausalLMRank;
}

export async function main(ctx: RankContext): Promise<{ failures: string[]; line: string } | null> {
  const c = ctx.args as FixtureRankCase;
  // The rank started on webgpu (Dawn installed); the reference forward runs on the cpu backend.
  await tf.setBackend('cpu');
  const { registration } = (await import(c.registration)) as { registration: Registration };
  return webgpuFixtureCheck(c.dir, c, (d, s) => registration.createModel(d, s, c.options ?? {}), undefined, ctx.state);
}
