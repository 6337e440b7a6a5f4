/**
 * Qwen3 (vLLM's qwen3.py) for one rank: Llama's decoder with per-head
 * RMSNorm of q and k (`q_norm`, `k_norm`) before rotary and an explicit
 * `head_dim` apart from hidden / heads; biases only with `attention_bias`.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, type LlamaConfig } from '@weft/core';
import { LLAMA_STACKED_PARAMS, LlamaForCausalLM, type LlamaRankOptions } from '@weft/llama';

export class Qwen3ForCausalLM extends LlamaForCausalLM {
  constructor(config: LlamaConfig, state: ParallelState, opts: LlamaRankOptions = {}) {
    if (config.modelType !== 'qwen3') throw new ConfigError(`Qwen3ForCausalLM needs a qwen3 config, got model_type ${config.modelType}`);
    super(config, state, LLAMA_STACKED_PARAMS, opts);
  }
}
