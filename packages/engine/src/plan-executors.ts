/**
 * Which executor runs a rank's device plan, or why none does (the rank then
 * runs the tfjs path, and says why in its ready message): the host executor
 * on the tensorflow and wasm backends, the WebGPU executor on webgpu. The
 * reference `cpu` backend stays on tfjs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { HOST_CAPS, HostPlanExecutor, unsupportedOps, webgpuPlanUnsupported, WebGpuPlanExecutor, type CausalLMRank, type DevicePlan } from '@weft/layers';
import type { RankArgs } from './rank-runner.js';
import type { PlanExecutorFactory } from './plan-runner.js';

/** The WebGPU executor's read-back holds at most this many sampled ids per step. */
const WEBGPU_MAX_SEQS = 64;

export type PlanChoice = { plan: DevicePlan; name: string; factory: PlanExecutorFactory } | { reason: string };

export function choosePlanExecutor(model: CausalLMRank, state: ParallelState, args: RankArgs): PlanChoice {
  const mode = args.devicePlan ?? 'auto';
  if (mode === false) return { reason: 'devicePlan: false' };
  if (!model.recordPlan) return { reason: 'the model records no device plan' };
  const why = model.planUnsupported?.() ?? null;
  if (why) return { reason: why };
  const backend = args.deferredBackend ?? tf.getBackend();
  const fmt = args.weightFormat;
  const packed = fmt !== undefined && (fmt.quantization !== null && fmt.quantization !== undefined || fmt.dtype !== 'float32');
  if (backend === 'webgpu') {
    if ((args.maxNumSeqs ?? WEBGPU_MAX_SEQS) > WEBGPU_MAX_SEQS) return { reason: `maxNumSeqs above ${WEBGPU_MAX_SEQS}` };
    const plan = model.recordPlan();
    const lacks = webgpuPlanUnsupported(plan);
    if (lacks) return { reason: lacks };
    return {
      plan,
      name: 'webgpu',
      factory: (p) =>
        WebGpuPlanExecutor.create({
          plan: p,
          maxRows: args.maxNumBatchedTokens ?? 2048,
          maxSeqs: Math.min(args.maxNumSeqs ?? WEBGPU_MAX_SEQS, WEBGPU_MAX_SEQS),
          maxModelLen: args.maxModelLen ?? 1 << 20,
        }),
    };
  }
  if (backend === 'tensorflow' || backend === 'wasm') {
    if (mode === 'auto' && !packed) return { reason: `fp32 weights on the CPU run on ${backend === 'wasm' ? "tfjs-wasm's" : "TensorFlow's"} matmul (the plan: devicePlan: true, --device-plan on)` };
    if (args.cpuKernels === false) return { reason: 'cpuKernels: false (dequantize per op)' };
    const plan = model.recordPlan();
    const lacks = unsupportedOps(plan, HOST_CAPS);
    if (lacks) return { reason: lacks };
    const k = typeof args.cpuKernels === 'object' ? args.cpuKernels : {};
    return { plan, name: 'host', factory: (p) => new HostPlanExecutor(p, { isa: k.isa, threads: k.threads ?? args.planThreads ?? 1 }) };
  }
  return { reason: `backend ${backend} (the reference path)` };
}
