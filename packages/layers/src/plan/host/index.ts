export { HostPlanExecutor, type HostPlanExecutorOptions } from './host-executor.js';
export { HOST_CAPS, HOST_OPS, type HostOpTable } from './op-table.js';
export type { HostKvCache, HostOpImpl, HostOpRun, HostStep, HostUpload } from './context.js';
