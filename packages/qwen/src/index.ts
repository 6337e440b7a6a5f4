export { Qwen2ForCausalLM } from './qwen2.js';
export { Qwen3ForCausalLM } from './qwen3.js';
export { registration } from './registration.js';
