/**
 * How the engine (`@weft/engine`'s registry) builds a DeepSeek V2 / V3 rank:
 * the config.json `architectures` this package serves and the model factory.
 * The engine imports this; this package never imports the engine.
 */
import type { ParallelState } from '@weft/comm';
import { loadModelConfig } from '@weft/core';
import { DeepseekForCausalLM } from './deepseek-for-causal-lm.js';

export interface DeepseekRankOptions {
  /** MoE token exchange under expert parallelism. */
  moeDispatch?: 'allgather' | 'alltoall';
  /** MLA: cache the compressed latent (default) or full per-head K/V. */
  mlaKvCache?: 'latent' | 'full';
}

export const registration = {
  architectures: ['DeepseekV2ForCausalLM', 'DeepseekV3ForCausalLM'],
  createModel(modelDir: string, state: ParallelState, opts: DeepseekRankOptions = {}): DeepseekForCausalLM {
    const config = loadModelConfig(modelDir);
    if (config.family !== 'deepseek') throw new Error(`${modelDir} holds a ${config.family} model, not DeepSeek`);
    return new DeepseekForCausalLM(config, state, { dispatch: opts.moeDispatch, kvCache: opts.mlaKvCache });
  },
};
