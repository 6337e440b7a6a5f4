// What models implement for the engine (CausalLMRank) and the tracer they report spans to; the engine itself is @weft/engine.
export * from './tracer.js';
export * from './causal-lm.js';
