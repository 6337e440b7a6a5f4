/** Worker-thread entry of a DeepSeek rank: the engine's loop with the DeepSeek model factory. */
import type { RankContext } from '@weft/comm';
import { loadModelConfig } from '@weft/core';
import { runRank } from '@weft/layers';
import { DeepseekForCausalLM } from './deepseek-for-causal-lm.js';

export function main(ctx: RankContext): Promise<void> {
  return runRank(ctx, (dir, state, args) => {
    const config = loadModelConfig(dir);
    if (config.family !== 'deepseek') throw new Error(`${dir} holds a ${config.family} model, not DeepSeek`);
    return new DeepseekForCausalLM(config, state, { dispatch: args.moeDispatch, kvCache: args.mlaKvCache });
  });
}
