import { ConfigError } from './errors.js';

/** How the ranks of one job are split: vLLM's tensor, pipeline and data parallel sizes. */
export interface ParallelConfig {
  tp: number;
  pp: number;
  dp: number;
  /** Expert parallelism (vLLM's --enable-expert-parallel): MoE experts split over the DP×TP ranks of a stage. */
  ep: boolean;
  /** Explicit layer count per PP stage; overrides vLLM's default split. */
  ppPartition?: number[];
}

export type ParallelOptions = Partial<ParallelConfig> & { worldSize?: number };

/** Fill defaults (1, 1, 1, false) and check every size; `worldSize`, when given, must equal dp·pp·tp. */
export function resolveParallelConfig(opts: ParallelOptions = {}): ParallelConfig & { worldSize: number } {
  const cfg = { tp: opts.tp ?? 1, pp: opts.pp ?? 1, dp: opts.dp ?? 1, ep: opts.ep ?? false, ppPartition: opts.ppPartition };
  for (const key of ['tp', 'pp', 'dp'] as const) {
    const v = cfg[key];
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${key} must be a positive integer, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  }
  const worldSize = cfg.tp * cfg.pp * cfg.dp;
  if (opts.worldSize !== undefined && opts.worldSize !== worldSize) {
    throw new ConfigError(
      `world size ${opts.worldSize} does not match tp×pp×dp = ${cfg.tp}×${cfg.pp}×${cfg.dp} = ${worldSize}`,
    );
  }
  if (cfg.ppPartition && cfg.ppPartition.length !== cfg.pp) {
    throw new ConfigError(`pp partition ${JSON.stringify(cfg.ppPartition)} has ${cfg.ppPartition.length} stages, pp=${cfg.pp}`);
  }
  return { ...cfg, worldSize };
}
