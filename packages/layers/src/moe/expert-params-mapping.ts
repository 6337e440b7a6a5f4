/**
 * Checkpoint names of the routed experts' projections → FusedMoE's
 * parameters (vLLM's `FusedMoE.make_expert_params_mapping`): most families
 * write `experts.N.{gate,up,down}_proj`, Mixtral `experts.N.{w1,w3,w2}`.
 * gate and up load into the two halves of `gate_up_proj`; down is renamed.
 */
import type { StackedParamMapping } from '../weight-loading.js';

export interface ExpertProjectionNames {
  /** The SiLU-gated projection (Mixtral: w1). */
  gate: string;
  /** The linear projection multiplied by it (Mixtral: w3). */
  up: string;
  /** The output projection (Mixtral: w2). */
  down: string;
}

/** Mappings for the loader (by name part: `.w1.` → `.gate_up_proj.` shard 0, …). */
export function expertParamsMapping(names: ExpertProjectionNames): StackedParamMapping[] {
  const m: StackedParamMapping[] = [
    { param: '.gate_up_proj.', checkpoint: `.${names.gate}.`, shardId: 0 },
    { param: '.gate_up_proj.', checkpoint: `.${names.up}.`, shardId: 1 },
  ];
  // The down loader takes the whole tensor; the shard id only names it when it is missing.
  if (names.down !== 'down_proj') m.push({ param: '.down_proj.', checkpoint: `.${names.down}.`, shardId: 'down' });
  return m;
}
