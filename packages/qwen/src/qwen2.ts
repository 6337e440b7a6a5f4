/**
 * Qwen2 / Qwen2.5 (vLLM's qwen2.py) for one rank: Llama's decoder with q/k/v
 * biases and none on o_proj, an optional tied head, and the sliding window on
 * the layers from `max_window_layers` on when `use_sliding_window` is set —
 * all options of the shared Llama model, read from the config.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, type LlamaConfig } from '@weft/core';
import { LLAMA_STACKED_PARAMS, LlamaForCausalLM, type LlamaRankOptions } from '@weft/llama';

export class Qwen2ForCausalLM extends LlamaForCausalLM {
  constructor(config: LlamaConfig, state: ParallelState, opts: LlamaRankOptions = {}) {
    if (config.modelType !== 'qwen2') throw new ConfigError(`Qwen2ForCausalLM needs a qwen2 config, got model_type ${config.modelType}`);
    super(config, state, LLAMA_STACKED_PARAMS, opts);
  }
}
