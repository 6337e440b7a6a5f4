/** Worker-thread entry of a Llama rank: the engine's loop with the Llama model factory. */
import type { RankContext } from '@weft/comm';
import { loadModelConfig } from '@weft/core';
import { runRank } from '@weft/layers';
import { LlamaForCausalLM } from './llama-for-causal-lm.js';

export function main(ctx: RankContext): Promise<void> {
  return runRank(ctx, (dir, state) => {
    const config = loadModelConfig(dir);
    if (config.family !== 'llama') throw new Error(`${dir} holds a ${config.family} model, not Llama`);
    return new LlamaForCausalLM(config, state);
  });
}
