import { LLMEngine, type EngineOptions } from '@weft/layers';

export type LLMOptions = Omit<EngineOptions, 'entry'>;

/**
 * DeepSeek V2 / V3 across worker threads: `await LLM.load(dir, { tp: 2, dp: 2, enableExpertParallel: true })`.
 */
export const LLM = {
  load(modelDir: string, opts: LLMOptions = {}): Promise<LLMEngine> {
    return LLMEngine.start(modelDir, { ...opts, entry: rankEntryUrl() });
  },
};

/** The rank entry next to this module: `rank-entry.ts` from source, `rank-entry.js` from dist. */
export function rankEntryUrl(): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./rank-entry${ext}`, import.meta.url);
}
