export * from './errors.js';
export * from './shape.js';
export * from './parallel-config.js';
export * from './layout.js';
export * from './pp-indices.js';
export * from './backend.js';
