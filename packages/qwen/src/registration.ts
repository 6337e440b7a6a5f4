/**
 * How the engine (`@weft/engine`'s registry) builds a Qwen rank: the
 * config.json `architectures` this package serves and the model factory,
 * one case per model file (qwen2.ts, qwen3.ts, qwen3-moe.ts as vLLM's models/).
 * The engine imports this; this package never imports the engine.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, loadModelConfig } from '@weft/core';
import type { CausalLMRank } from '@weft/layers';
import { llamaRankOptions } from '@weft/llama';
import { Qwen2ForCausalLM } from './qwen2.js';
import { Qwen3ForCausalLM } from './qwen3.js';
import { Qwen3MoeForCausalLM } from './qwen3-moe.js';

export const registration = {
  architectures: ['Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'Qwen3MoeForCausalLM'] as string[],
  createModel(modelDir: string, state: ParallelState, opts: Record<string, unknown> = {}): CausalLMRank {
    const config = loadModelConfig(modelDir);
    if (config.family === 'llama' && config.modelType === 'qwen2') return new Qwen2ForCausalLM(config, state, llamaRankOptions(opts));
    if (config.family === 'llama' && config.modelType === 'qwen3') return new Qwen3ForCausalLM(config, state, llamaRankOptions(opts));
    if (config.family === 'qwen3_moe') return new Qwen3MoeForCausalLM(config, state, { dispatch: moeDispatch(opts.moeDispatch) });
    throw new ConfigError(`${modelDir}: model_type ${config.modelType} is not a Qwen model this package builds (qwen2, qwen3, qwen3_moe)`);
  },
};

/** The engine's `moeDispatch` rank option (validated on the driver). */
function moeDispatch(v: unknown): 'allgather' | 'alltoall' | undefined {
  return v === 'allgather' || v === 'alltoall' ? v : undefined;
}
