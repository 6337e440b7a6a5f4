/** Worker entry of every rank: the engine's rank loop with the model the registry names for this checkpoint. */
import type { RankContext } from '@weft/comm';
import { runRank, type RankArgs } from './model-runner.js';
import { modelRegistration } from './registry.js';

export function main(ctx: RankContext): Promise<void> {
  return runRank(ctx, (dir, state, args: RankArgs) =>
    modelRegistration(args.architecture).createModel(dir, state, { moeDispatch: args.moeDispatch, mlaKvCache: args.mlaKvCache }),
  );
}
