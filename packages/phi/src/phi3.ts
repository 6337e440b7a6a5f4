/**
 * Phi-3 (vLLM's phi3.py, a LlamaForCausalLM) for one rank. The checkpoint
 * holds q/k/v as one `qkv_proj` tensor and gate/up as one `gate_up_proj`:
 * they load straight into the fused parameters, whose loaders narrow each
 * part (q, k, v; gate, up) to this rank's rows, so every TP degree works,
 * KV heads replicated included. No biases. Phi-3's long-context rope
 * (`longrope` / `su`) is refused by the config parser.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, type LlamaConfig } from '@weft/core';
import type { StackedParamMapping } from '@weft/layers';
import { LlamaForCausalLM, type LlamaRankOptions } from '@weft/llama';

/** Nothing to stack: the checkpoint's names are the fused parameters' own. */
export const PHI3_STACKED_PARAMS: StackedParamMapping[] = [];

export class Phi3ForCausalLM extends LlamaForCausalLM {
  constructor(config: LlamaConfig, state: ParallelState, opts: LlamaRankOptions = {}) {
    if (config.modelType !== 'phi3') throw new ConfigError(`Phi3ForCausalLM needs a phi3 config, got model_type ${config.modelType}`);
    super(config, state, PHI3_STACKED_PARAMS, opts);
  }
}
