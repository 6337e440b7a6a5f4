export { Gemma2DecoderLayer, Gemma2ForCausalLM, roundToDtype } from './gemma2.js';
export { registration } from './registration.js';
