import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tensorflowInstalled, type WeightFormat } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { rankBackends } from './rank-backend.js';

const INT4: WeightFormat = { dtype: 'float32', quantization: 'q4_0' };
const FP32: WeightFormat = { dtype: 'float32', quantization: null };
const installed = tensorflowInstalled();
const haveTf = !('missing' in installed);

describe('ranks whose step is the host plan start without libtensorflow', () => {
  it.runIf(haveTf)('defers tensorflow only for packed weights on worker-thread ranks with the plan and the kernels on', () => {
    expect(rankBackends({ backend: 'tensorflow' }, INT4, 1)).toEqual({ start: 'cpu', deferred: 'tensorflow' });
    expect(rankBackends({ backend: 'tensorflow' }, { dtype: 'bfloat16', quantization: null }, 1)).toEqual({ start: 'cpu', deferred: 'tensorflow' });
    expect(rankBackends({ backend: 'tensorflow' }, FP32, 1)).toEqual({ start: 'tensorflow' });
    expect(rankBackends({ backend: 'wasm' }, INT4, 1)).toEqual({ start: 'wasm' });
    expect(rankBackends({}, INT4, 1)).toEqual({ start: 'cpu', deferred: 'tensorflow' }); // the automatic choice would be tensorflow
    expect(rankBackends({ backend: 'webgpu' }, INT4, 1)).toEqual({ start: 'webgpu' });
    expect(rankBackends({ backend: 'tensorflow', devicePlan: false }, INT4, 1)).toEqual({ start: 'tensorflow' });
    expect(rankBackends({ backend: 'tensorflow', cpuKernels: false }, INT4, 1)).toEqual({ start: 'tensorflow' });
    expect(rankBackends({ backend: 'tensorflow', spawn: async () => { throw new Error('not started'); } }, INT4, 1)).toEqual({ start: 'tensorflow' });
  });

  it.runIf(haveTf && process.platform === 'linux')('int4 on tensorflow: the plan runs with no libtensorflow mapped; LLM.logits loads it and agrees', () => {
    const child = fileURLToPath(new URL('../test-support/deferred-backend-child.ts', import.meta.url));
    const dir = fileURLToPath(new URL('../../../fixtures/llama-tiny', import.meta.url));
    const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', child, dir], { encoding: 'utf8', timeout: 120_000 });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { backend: string; stepPath: string; afterGenerate: boolean; afterLogits: boolean; maxDiff: number; same: boolean };
    expect(r).toMatchObject({ backend: 'tensorflow', stepPath: 'plan (host)', afterGenerate: false, afterLogits: true, same: true });
    // The step path and the full forward (other kernel row blocks, a8 activations): the a8 bound of quant-parity.
    expect(r.maxDiff).toBeLessThan(5e-2);
  });
});
