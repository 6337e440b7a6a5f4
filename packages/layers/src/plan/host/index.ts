export { HostPlanExecutor, type HostPlanExecutorOptions } from './host-executor.js';
export { HOST_CAPS, HOST_OPS, type HostOpTable } from './op-table.js';
export type { HostKvCache, HostOpImpl, HostOpRun, HostStep, HostUpload } from './context.js';
export { fixturePlanParity, fixtureSchedule, hostFixtureParity, hostFixtureCheck, parityReport, HOST_PARITY_BOUNDS, type FixturePlanParity, type HostFixtureOptions, type LogitsGap, type ParityBound } from './fixture-plan-parity.js';
