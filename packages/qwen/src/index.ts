export { Qwen2ForCausalLM } from './qwen2.js';
export { Qwen3ForCausalLM } from './qwen3.js';
export { Qwen3MoeForCausalLM, type Qwen3MoeOptions } from './qwen3-moe.js';
export { registration } from './registration.js';
