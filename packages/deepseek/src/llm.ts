import { defineLLM, siblingModule } from '@weft/layers';

export type { LLMOptions } from '@weft/layers';

/** DeepSeek V2 / V3 across worker threads: `await LLM.load(dir, { tp: 2, dp: 2, enableExpertParallel: true })`. */
export const LLM = defineLLM(siblingModule(import.meta.url, 'rank-entry'));
