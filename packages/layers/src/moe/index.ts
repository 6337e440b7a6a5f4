export * from './router.js';
export * from './expert-map.js';
export * from './routed-experts.js';
export * from './shared-experts.js';
export * from './dispatch.js';
export * from './fused-moe.js';
export * from './expert-params-mapping.js';
