/**
 * How the engine (`@weft/engine`'s registry) builds a Qwen rank: the
 * config.json `architectures` this package serves and the model factory,
 * one case per model file (qwen2.ts, qwen3.ts, qwen3-moe.ts as vLLM's models/).
 * The engine imports this; this package never imports the engine.
 */
import type { ParallelState } from '@weft/comm';
import { ConfigError, loadModelConfig } from '@weft/core';
import type { CausalLMRank } from '@weft/layers';

export const registration = {
  architectures: [] as string[],
  createModel(modelDir: string, state: ParallelState, _opts: Record<string, unknown> = {}): CausalLMRank {
    const config = loadModelConfig(modelDir);
    void state;
    throw new ConfigError(`${modelDir}: model_type ${config.modelType} is not a Qwen model this package builds`);
  },
};
