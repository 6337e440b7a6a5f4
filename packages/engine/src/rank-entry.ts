/**
 * Worker entry of every rank: the engine's rank loop with the model the registry names for this checkpoint
 * (a built-in one, or the module the driver's registration named, imported here).
 */
import type { RankContext } from '@weft/comm';
import { configureWebgpuKernels, webgpuKernelSettingsFromEnv } from '@weft/layers';
import { runRank } from './rank-loop.js';
import type { RankArgs } from './rank-runner.js';
import { loadModelRegistration } from './registry.js';

export function main(ctx: RankContext): Promise<void> {
  // The rank's edge: its environment (a copy of the launcher's) is read here, once, not per kernel dispatch.
  configureWebgpuKernels(webgpuKernelSettingsFromEnv(process.env));
  return runRank(ctx, async (dir, state, args: RankArgs) =>
    (await loadModelRegistration(args.architecture, args.modelModule ?? null)).createModel(dir, state, { moeDispatch: args.moeDispatch, mlaKvCache: args.mlaKvCache, maxModelLen: args.maxModelLen }),
  );
}
