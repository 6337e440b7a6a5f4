/**
 * DeepSeek's shared experts: one dense SiLU MLP of moe_intermediate_size ×
 * n_shared_experts that every token goes through, tensor-parallel over TP
 * and left unreduced so its partial output joins the routed experts' before
 * the MoE block's single all-reduce.
 */
import type { GroupCoordinator } from '@weft/comm';
import { GatedMLP } from '../gated-mlp.js';

export interface SharedExpertsOptions {
  /** e.g. `model.layers.1.mlp.shared_experts` */
  prefix: string;
  hiddenSize: number;
  /** moe_intermediate_size × n_shared_experts */
  intermediateSize: number;
  tp: GroupCoordinator;
}

/** forward gives this rank's partial output [T, H] (sum over TP ranks = the MLP's output). */
export class SharedExperts extends GatedMLP {
  constructor(opts: SharedExpertsOptions) {
    super({ ...opts, reduceResults: false });
  }
}
