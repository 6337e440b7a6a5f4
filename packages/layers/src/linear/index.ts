export * from './linear-base.js';
export * from './linear-weight.js';
export * from './replicated-linear.js';
export * from './column-parallel-linear.js';
export * from './merged-column-parallel-linear.js';
export * from './qkv-parallel-linear.js';
export * from './row-parallel-linear.js';
