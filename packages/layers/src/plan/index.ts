export type {
  ActView,
  AddOp,
  AllReduceOp,
  AttentionOp,
  EmbedOp,
  GatedActOp,
  GatherColumnsOp,
  GatherSampledOp,
  LinearOp,
  PlanAct,
  PlanOp,
  PlanOpKind,
  RmsNormOp,
  RotaryOp,
  SoftcapOp,
} from './ops.js';
export { PlanBuilder, view, whole, type DevicePlan } from './builder.js';
export { matrixStorage, vectorData, type MatrixStorage } from './weights.js';
export { unsupportedOps, type ExecutorCaps, type PlanExecutor, type PlanStepInput, type PlanStepOutput } from './executor.js';
export { allReduceHost, gatherColumnsHost } from './collectives.js';
