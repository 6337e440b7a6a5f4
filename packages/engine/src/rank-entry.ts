/**
 * Worker entry of every rank: the engine's rank loop with the model the registry names for this checkpoint
 * (a built-in one, or the module the driver's registration named, imported here).
 */
import type { RankContext } from '@weft/comm';
import { runRank, type RankArgs } from './model-runner.js';
import { loadModelRegistration } from './registry.js';

export function main(ctx: RankContext): Promise<void> {
  return runRank(ctx, async (dir, state, args: RankArgs) =>
    (await loadModelRegistration(args.architecture, args.modelModule ?? null)).createModel(dir, state, { moeDispatch: args.moeDispatch, mlaKvCache: args.mlaKvCache }),
  );
}
