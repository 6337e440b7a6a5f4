export { WebGpuPlanExecutor, WEBGPU_CAPS, type WebGpuPlanExecutorOptions } from './webgpu-plan-executor.js';
export { requestDevice } from './device.js';
