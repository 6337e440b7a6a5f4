export * from './deepseek-mla.js';
export * from './deepseek-for-causal-lm.js';
export { registration, type DeepseekRankOptions } from './registration.js';
