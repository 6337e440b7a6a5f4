/**
 * How the engine (`@weft/engine`'s registry) builds a Phi-3 rank: the
 * config.json `architectures` this package serves and the model factory.
 * The engine imports this; this package never imports the engine.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, loadModelConfig } from '@weft/core';
import { llamaRankOptions } from '@weft/llama';
import { Phi3ForCausalLM } from './phi3.js';

export const registration = {
  architectures: ['Phi3ForCausalLM'] as string[],
  createModel(modelDir: string, state: ParallelState, opts: Record<string, unknown> = {}): Phi3ForCausalLM {
    const config = loadModelConfig(modelDir);
    if (config.family === 'llama' && config.modelType === 'phi3') return new Phi3ForCausalLM(config, state, llamaRankOptions(opts));
    throw new ConfigError(`${modelDir}: model_type ${config.modelType} is not Phi-3 (phi3)`);
  },
};
