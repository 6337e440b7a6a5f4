export * from './deepseek-mla.js';
export * from './deepseek-for-causal-lm.js';
export * from './llm.js';
