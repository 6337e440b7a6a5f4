/**
 * How the engine (`@weft/engine`'s registry) builds a Mixtral rank: the
 * config.json `architectures` this package serves and the model factory.
 * The engine imports this; this package never imports the engine.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, loadModelConfig } from '@weft/core';
import { MixtralForCausalLM } from './mixtral.js';

export interface MixtralRankOptions {
  /** MoE token exchange under expert parallelism. */
  moeDispatch?: 'allgather' | 'alltoall';
}

export const registration = {
  architectures: ['MixtralForCausalLM'],
  createModel(modelDir: string, state: ParallelState, opts: MixtralRankOptions = {}): MixtralForCausalLM {
    const config = loadModelConfig(modelDir);
    if (config.family !== 'mixtral') throw new ConfigError(`${modelDir} holds a ${config.family} model, not Mixtral`);
    return new MixtralForCausalLM(config, state, { dispatch: opts.moeDispatch });
  },
};
