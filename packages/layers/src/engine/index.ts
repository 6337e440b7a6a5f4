export * from './protocol.js';
export * from './sampler.js';
export * from './tracer.js';
export * from './causal-lm.js';
export * from './request-state.js';
export * from './rank-runner.js';
export * from './llm-engine.js';
