export type {
  ActView,
  AddOp,
  AllReduceOp,
  AttentionOp,
  CopyHeadsOp,
  EmbedOp,
  GatedActOp,
  GatherColumnsOp,
  GatherSampledOp,
  HeadMatmulOp,
  HeadMatrices,
  LinearOp,
  MoeExchange,
  MoeExpert,
  MoeOp,
  PlanAct,
  PlanOp,
  PlanOpKind,
  RmsNormOp,
  RoundInputOp,
  RotaryOp,
  SoftcapOp,
} from './ops.js';
export { PlanBuilder, view, whole, type DevicePlan } from './builder.js';
export { hostValues, matrixStorage, prefetchHostValues, vectorData, type MatrixStorage } from './weights.js';
export { unsupportedOps, type ExecutorCaps, type PlanExecutor, type PlanStepInput, type PlanStepOutput } from './executor.js';
export { allReduceHost, gatherColumnsHost } from './collectives.js';
export { HostPlanExecutor, HOST_CAPS, HOST_OPS, fixturePlanParity, fixtureSchedule, hostFixtureParity, hostFixtureCheck, parityReport, HOST_PARITY_BOUNDS, type HostPlanExecutorOptions, type HostOpImpl, type HostOpTable, type FixturePlanParity, type HostFixtureOptions, type ParityBound } from './host/index.js';
export { WebGpuPlanExecutor, WEBGPU_CAPS, webgpuPlanUnsupported, requestDevice, subgroupSize, StepTrace, type StepTiming, GpuWait, sleepMs, webgpuFixtureCheck, WEBGPU_PARITY_BOUNDS, type WebGpuPlanExecutorOptions, type WebGpuFixtureRankCase, type KernelTuning, gemvShape, gemvShapeBefore, type GemvShape, type GemvWeight } from './webgpu/index.js';
