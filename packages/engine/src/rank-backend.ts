/**
 * A rank whose every step runs on the host plan (packed weights on the tensorflow backend: @weft/cpu-kernels
 * only) does not need libtensorflow, whose loading alone costs 0.35 GB of resident memory a process (0.27
 * mapped and touched, ~0.08 allocated: docs/benchmarks/cpu.md). Such ranks start on tfjs's `cpu` backend
 * (parameters, norm vectors: plain typed arrays) and load the asked-for backend the first time a tfjs step is
 * needed (LLM.logits' full forward, a plan that turns out unsupported); tfjs moves a tensor to the new backend
 * on its first use there. They report the asked-for backend: `LLM.backend` is what tfjs steps run on.
 */
import * as tf from '@tensorflow/tfjs-core';
import { configureTensorflowEnvironment, initBackend, tensorflowInstalled, type BackendName, type WeightFormat } from '@weft/core';
import type { LLMOptions } from './llm-options.js';

export interface RankBackends {
  /** What the launcher starts each rank on. */
  start: BackendName | undefined;
  /** Set when `start` stands in for it until a tfjs step needs it. */
  deferred?: BackendName;
}

/**
 * Driver side. Deferred only where nothing but the host plan is expected: tensorflow (asked for, or the automatic
 * choice), worker-thread ranks (the launcher's TensorFlow environment is set here instead), packed weights, the
 * plan allowed, the CPU kernels on, and an addon that will load later (checked on disk, without loading it).
 */
export function rankBackends(
  opts: Pick<LLMOptions, 'backend' | 'spawn' | 'devicePlan' | 'webgpuStep' | 'cpuKernels' | 'intraOpThreads' | 'verbose'>,
  format: WeightFormat,
  localRanks: number,
): RankBackends {
  const packed = (format.quantization !== null && format.quantization !== undefined) || format.dtype !== 'float32';
  const planAllowed = opts.devicePlan !== false && opts.webgpuStep !== false && opts.cpuKernels !== false;
  // No backend named: the automatic choice takes tensorflow wherever the check below passes (core's probe order).
  if ((opts.backend ?? 'tensorflow') !== 'tensorflow' || opts.spawn || !packed || !planAllowed) return { start: opts.backend };
  const installed = tensorflowInstalled();
  if ('missing' in installed || (!installed.threadSafe && localRanks > 1)) return { start: opts.backend };
  configureTensorflowEnvironment({ intraOpThreads: opts.intraOpThreads, localRanks, verbose: opts.verbose });
  return { start: 'cpu', deferred: 'tensorflow' };
}

/** Rank side: make `name` tfjs's backend now (a no-op once it is). */
export async function useDeferredBackend(name: BackendName | undefined, threadRanks: number): Promise<void> {
  if (name && tf.getBackend() !== name) await initBackend({ prefer: name, threadRanks });
}
