export * from './packed-weight.js';
export * from './quant-kernels.js';
export * from './linear-method.js';
export * from './quantization-config.js';
export * from './cpu-quant-kernels.js';
