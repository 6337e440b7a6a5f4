/**
 * Which experts live on which expert-parallel rank (vLLM's
 * `determine_expert_map`): E // ep experts per rank, the first E % ep ranks one
 * more; 'linear' gives each rank a contiguous block, 'round_robin' gives rank r
 * experts r, r + ep, r + 2·ep, … Local ids follow ascending global ids. With
 * fewer experts than ranks, the last ranks hold none (as in vLLM).
 */
import { ConfigError } from '@weft/core';

export type ExpertPlacement = 'linear' | 'round_robin';

export interface ExpertMap {
  /** Experts on this rank. */
  localNum: number;
  /** Global id → local id, −1 where the expert is on another rank. */
  map: Int32Array;
  /** Local id → global id (ascending). */
  globalIds: number[];
}

export function determineExpertMap(epSize: number, epRank: number, numExperts: number, strategy: ExpertPlacement = 'linear'): ExpertMap {
  if (!Number.isInteger(epSize) || epSize < 1) throw new ConfigError(`expert-parallel size must be a positive integer, got ${epSize}`);
  if (!Number.isInteger(epRank) || epRank < 0 || epRank >= epSize) throw new ConfigError(`expert-parallel rank ${epRank} is outside [0, ${epSize})`);
  if (!Number.isInteger(numExperts) || numExperts < 1) throw new ConfigError(`n_routed_experts must be a positive integer, got ${numExperts}`);
  const base = Math.floor(numExperts / epSize);
  const rem = numExperts % epSize;
  const localNum = base + (epRank < rem ? 1 : 0);
  let globalIds: number[];
  if (strategy === 'linear') {
    const start = epRank * base + Math.min(epRank, rem);
    globalIds = Array.from({ length: localNum }, (_, i) => start + i);
  } else if (strategy === 'round_robin') {
    globalIds = Array.from({ length: localNum }, (_, i) => epRank + i * epSize);
  } else {
    throw new ConfigError(`unknown expert placement strategy '${String(strategy)}' (expected 'linear' or 'round_robin')`);
  }
  const map = new Int32Array(numExperts).fill(-1);
  globalIds.forEach((g, l) => {
    map[g] = l;
  });
  return { localNum, map, globalIds };
}

/** Global id → EP rank that holds it, for every expert (what all-to-all dispatch needs). */
export function expertOwners(epSize: number, numExperts: number, strategy: ExpertPlacement = 'linear'): Int32Array {
  const owners = new Int32Array(numExperts).fill(-1);
  for (let r = 0; r < epSize; r++) {
    for (const g of determineExpertMap(epSize, r, numExperts, strategy).globalIds) owners[g] = r;
  }
  return owners;
}
