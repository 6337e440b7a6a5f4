import { defineLLM, siblingModule } from '@weft/layers';

export type { LLMOptions } from '@weft/layers';

/**
 * Llama across worker threads: `const llm = await LLM.load(dir, { tp: 2 })`,
 * `await llm.generate(['def fib(n):'], { maxTokens: 32 })`, `await llm.close()`.
 */
export const LLM = defineLLM(siblingModule(import.meta.url, 'rank-entry'));
