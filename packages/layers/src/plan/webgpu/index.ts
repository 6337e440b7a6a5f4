export { WebGpuPlanExecutor, WEBGPU_CAPS, webgpuPlanUnsupported, type WebGpuPlanExecutorOptions } from './webgpu-plan-executor.js';
export { webgpuFixtureCheck, WEBGPU_PARITY_BOUNDS } from './webgpu-fixture-check.js';
export type { FixtureRankCase as WebGpuFixtureRankCase } from './fixture-rank.entry.js';
export { requestDevice, subgroupSize } from './device.js';
export { StepTrace, type StepTiming } from './step-trace.js';
export { GpuWait, sleepMs } from './gpu-wait.js';
export type { KernelTuning } from './plan-kernels.js';
export { gemvShape, gemvShapeBefore, type GemvShape, type GemvWeight } from './wgsl-gemv.js';
