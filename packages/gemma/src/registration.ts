/**
 * How the engine (`@weft/engine`'s registry) builds a Gemma 2 rank: the
 * config.json `architectures` this package serves and the model factory.
 * The engine imports this; this package never imports the engine.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, loadModelConfig } from '@weft/core';
import { llamaRankOptions } from '@weft/llama';
import { Gemma2ForCausalLM } from './gemma2.js';

export const registration = {
  architectures: ['Gemma2ForCausalLM'] as string[],
  createModel(modelDir: string, state: ParallelState, opts: Record<string, unknown> = {}): Gemma2ForCausalLM {
    const config = loadModelConfig(modelDir);
    if (config.family === 'gemma2') return new Gemma2ForCausalLM(config, state, llamaRankOptions(opts));
    throw new ConfigError(`${modelDir}: model_type ${config.modelType} is not Gemma 2 (gemma2)`);
  },
};
