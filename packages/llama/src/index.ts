export * from './llama-config.js';
export * from './llama-attention.js';
export * from './llama-for-causal-lm.js';
export { registration } from './registration.js';
