export { Phi3ForCausalLM, PHI3_STACKED_PARAMS } from './phi3.js';
export { registration } from './registration.js';
