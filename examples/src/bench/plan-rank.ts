/**
 * What the host-plan benches (cpu-plan.ts, host-decode-profile.ts) load: a random checkpoint of TinyLlama's
 * widths (hidden 2048, 32 heads over 4 KV heads, intermediate 5632) at a chosen depth and vocabulary, written
 * once under the temporary folder, and one solo rank of it in a weight format.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint, type WeightFormat } from '@weft/core';
import { loadWeights, QuantizationConfig, soloParallelState, useCpuQuantKernels } from '@weft/layers';
import { registration } from '@weft/llama';
import { hasRandomLlama, writeRandomLlama, type LlamaShape } from './random-checkpoint.js';

export const PLAN_FORMATS: Record<string, WeightFormat> = {
  fp32: { dtype: 'float32', quantization: null },
  bf16: { dtype: 'bfloat16', quantization: null },
  q8_0: { dtype: 'bfloat16', quantization: 'q8_0' },
  q4_0: { dtype: 'bfloat16', quantization: 'q4_0' },
};

/** The checkpoint folder for `layers` layers and a `vocab` vocabulary, written if it is not there. */
export function planCheckpoint(layers: number, vocab: number): string {
  const shape: LlamaShape = { name: `plan-l${layers}-v${vocab}`, hidden: 2048, layers, heads: 32, kvHeads: 4, intermediate: 5632, vocab };
  const dir = join(tmpdir(), `weft-cpu-plan-${shape.name}`);
  if (!hasRandomLlama(dir)) writeRandomLlama(dir, shape);
  return dir;
}

/** One solo rank of `dir` with its weights loaded in format `fmt` (a PLAN_FORMATS name). */
export function loadPlanRank(dir: string, fmt: string) {
  const format = PLAN_FORMATS[fmt];
  if (!format) throw new Error(`--formats: unknown format '${fmt}' (${Object.keys(PLAN_FORMATS).join(', ')})`);
  const model = registration.createModel(dir, soloParallelState());
  // as a rank does before loading (engine rank-loop): the CPU kernels its linears run, so that Q4_0 takes their layout
  if (format.quantization || format.dtype !== 'float32') useCpuQuantKernels(true);
  const ckpt = Checkpoint.open(dir);
  try {
    loadWeights({ params: model.parameters(), checkpoint: ckpt, stacked: model.stackedParams, ignore: (n) => model.ignoreTensor(n), quantization: new QuantizationConfig(format) });
  } finally {
    ckpt.close();
  }
  return model;
}
