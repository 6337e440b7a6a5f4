/**
 * How the engine (`@weft/engine`'s registry) builds a Llama rank: the
 * config.json `architectures` this package serves and the model factory.
 * The engine imports this; this package never imports the engine.
 */
import type { ParallelState } from '@weft/comm';
import { loadModelConfig } from '@weft/core';
import { LLAMA_STACKED_PARAMS, LlamaForCausalLM, llamaRankOptions } from './llama-for-causal-lm.js';

export const registration = {
  architectures: ['LlamaForCausalLM', 'MistralForCausalLM'],
  createModel(modelDir: string, state: ParallelState, opts: Record<string, unknown> = {}): LlamaForCausalLM {
    const config = loadModelConfig(modelDir);
    if (config.family !== 'llama') throw new Error(`${modelDir} holds a ${config.family} model, not Llama`);
    return new LlamaForCausalLM(config, state, LLAMA_STACKED_PARAMS, llamaRankOptions(opts));
  },
};
