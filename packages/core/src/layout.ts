import type { ParallelConfig } from './parallel-config.js';

export type GroupKind = 'tp' | 'pp' | 'dp' | 'ep' | 'world';

/** Rank lists of every group kind: vLLM's `initialize_model_parallel`. */
export interface RankLayout {
  worldSize: number;
  tp: number[][];
  pp: number[][];
  dp: number[][];
  /** The DP×TP ranks of each PP stage (vLLM's EP group; used by MoE models). */
  ep: number[][];
  world: number[][];
}

/** Coordinates of a global rank: global = dp·PP·TP + pp·TP + tp. */
export interface RankCoords {
  rank: number;
  tpRank: number;
  ppRank: number;
  dpRank: number;
}

type Dims = { dp: number; pp: number; tp: number };

export function rankCoords(rank: number, cfg: Dims): RankCoords {
  return {
    rank,
    tpRank: rank % cfg.tp,
    ppRank: Math.floor(rank / cfg.tp) % cfg.pp,
    dpRank: Math.floor(rank / (cfg.tp * cfg.pp)),
  };
}

export function globalRank(c: { dpRank: number; ppRank: number; tpRank: number }, cfg: Dims): number {
  return c.dpRank * cfg.pp * cfg.tp + c.ppRank * cfg.tp + c.tpRank;
}

/**
 * all_ranks = arange(world).reshape(dp, pp, tp); a group kind's lists are the
 * rows after moving its axis last. EP groups join the dp and tp axes of one stage.
 */
export function rankLayout(cfg: Pick<ParallelConfig, 'tp' | 'pp' | 'dp'>): RankLayout {
  const { tp, pp, dp } = cfg;
  const worldSize = tp * pp * dp;
  const at = (d: number, p: number, t: number) => globalRank({ dpRank: d, ppRank: p, tpRank: t }, cfg);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const tpGroups: number[][] = [];
  const ppGroups: number[][] = [];
  const dpGroups: number[][] = [];
  const epGroups: number[][] = [];
  // Row order follows numpy's transpose(...).reshape(-1, size) for each kind.
  for (const d of range(dp)) for (const p of range(pp)) tpGroups.push(range(tp).map((t) => at(d, p, t)));
  for (const d of range(dp)) for (const t of range(tp)) ppGroups.push(range(pp).map((p) => at(d, p, t)));
  // vLLM: all_ranks.transpose(1, 3) puts tp outermost, then pp.
  for (const t of range(tp)) for (const p of range(pp)) dpGroups.push(range(dp).map((d) => at(d, p, t)));
  for (const p of range(pp)) epGroups.push(range(dp).flatMap((d) => range(tp).map((t) => at(d, p, t))));
  return { worldSize, tp: tpGroups, pp: ppGroups, dp: dpGroups, ep: epGroups, world: [range(worldSize)] };
}

/** The one group of `kind` that holds `rank`. */
export function groupOf(layout: RankLayout, kind: GroupKind, rank: number): { index: number; ranks: number[] } {
  const groups = layout[kind];
  const index = groups.findIndex((g) => g.includes(rank));
  if (index < 0) throw new RangeError(`rank ${rank} is in no ${kind} group of a world of ${layout.worldSize}`);
  return { index, ranks: groups[index]! };
}
