/// <reference types="@webgpu/types" />
/**
 * Test support: a fixture's plan on the WebGPU executor against the same
 * loaded rank's tfjs forward (the current tfjs backend: cpu in tests, so the
 * packed formats run weight-only, as the WebGPU kernels do) and the
 * fixture's Hugging Face logits, over layers' fixture schedule (batched
 * prefill, a chunk, batched decodes; block size 4).
 */
import type { ParallelState } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import type { CausalLMRank } from '../../engine/causal-lm.js';
import { hostFixtureParity, parityReport, type ParityBound } from '../host/fixture-plan-parity.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

/** The bounds: HF's fixture bound; plan = tfjs up to fp32 summation order on another device. */
export const WEBGPU_PARITY_BOUNDS = {
  fixture: { maxAbs: 1e-3, relL2: 1e-4 },
  tfjs: { maxAbs: 1e-4, relL2: 1e-5 },
} as const satisfies Record<string, ParityBound>;

export async function webgpuFixtureCheck(
  dir: string,
  c: { file: string; format: WeightFormat; hf: ParityBound; tfjs: ParityBound },
  createModel: (dir: string, state: ParallelState) => CausalLMRank,
  device?: GPUDevice,
  /** A rank of runRanks (every rank calls this; only the one holding the logits gets the check); default a solo rank. */
  state?: ParallelState,
): Promise<{ failures: string[]; line: string } | null> {
  const r = await hostFixtureParity({
    dir,
    file: c.file,
    format: c.format,
    createModel,
    state,
    // Without a device the executor requests one and destroys it with itself.
    makeExecutor: (plan) => WebGpuPlanExecutor.create({ plan, device, maxRows: 64, maxSeqs: 8, maxModelLen: 128 }),
  });
  if (!r) {
    if (!state) throw new Error(`${dir}: a solo rank must hold the logits`);
    return null;
  }
  const { failures, line } = parityReport(r, c);
  return { failures, line: `${dir.split('/').at(-1)} ${c.file} (webgpu): ${line}` };
}
