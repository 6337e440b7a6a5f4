/**
 * Test support (not exported): one table-driven suite for a model family's fixtures through the device plan
 * on both executors (tp 1), each against the same loaded rank's tfjs forward and the fixtures' Hugging Face
 * logits over a batched prefill, a chunk and batched decodes (fixtureSchedule). A family's test is its table.
 * - host executor (@weft/cpu-kernels only; tfjs on wasm with the CPU kernels registered): fp32 and bf16 equal
 *   tfjs and are within the fixture bound of HF; Q8_0 / Q4_0 quantize activations to Q8_0 (the *-a8.json
 *   files), and two a8 paths may round one activation to neighbouring quanta, so plan against tfjs then
 *   differs by up to the a8 bound, as each does against HF.
 * - WebGPU executor (Dawn: Mesa's OpenGL here and in CI; tfjs on cpu): Q8_0 / Q4_0 weight-only (the WGSL
 *   kernels dequantize the blocks; activations stay fp32, the expected-q*_0.json files).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { fileURLToPath } from 'node:url';
import type { ParallelState } from '@weft/comm';
import { initBackend, type WeightFormat } from '@weft/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_PARITY_BOUNDS, hostFixtureCheck, useCpuQuantKernels, WEBGPU_PARITY_BOUNDS, webgpuFixtureCheck, type CausalLMRank } from '../src/index.js';

export type PlanExecutorName = 'host' | 'webgpu';

/** A fixture, its weight format (default fp32, unquantized) and where it runs. */
export interface PlanFixtureCase extends Partial<WeightFormat> {
  /** A folder of the repository's fixtures/. */
  fixture: string;
  /** Only these executors (default both). */
  on?: readonly PlanExecutorName[];
  /** The family's model options (DeepSeek's `mlaKvCache`), given to createModel and named in the test. */
  options?: Record<string, unknown>;
}

/** What the suite needs of a family's registration. */
export interface PlanFixtureModels {
  createModel(dir: string, state: ParallelState, options?: Record<string, unknown>): CausalLMRank;
}

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

/** The expected file and bounds of a case on an executor: quantized weights run a8 on the host, weight-only on WebGPU. */
function check(executor: PlanExecutorName, format: WeightFormat) {
  const q = format.quantization;
  if (executor === 'webgpu') return { file: q ? `expected-${q}.json` : 'expected.json', hf: WEBGPU_PARITY_BOUNDS.fixture, tfjs: WEBGPU_PARITY_BOUNDS.tfjs };
  const B = HOST_PARITY_BOUNDS;
  return q ? { file: `expected-${q}-a8.json`, hf: B.a8, tfjs: B.a8 } : { file: 'expected.json', hf: B.fixture, tfjs: B.exact };
}

/**
 * `family` names the suites; `hostIsas` are the host executor's ISA paths to run (default the best this CPU
 * has; 'portable' adds the JS path).
 */
export function planFixtureSuite(family: string, models: PlanFixtureModels, cases: readonly PlanFixtureCase[], hostIsas: readonly (string | undefined)[] = [undefined]): void {
  const on = (e: PlanExecutorName) =>
    cases
      .filter((c) => (c.on ?? ['host', 'webgpu']).includes(e))
      .map((c) => {
        const format: WeightFormat = { dtype: c.dtype ?? 'float32', quantization: c.quantization ?? null };
        const ck = check(e, format);
        return { ...c, ...ck, format, name: `${c.fixture} ${ck.file}${c.options ? ` ${JSON.stringify(c.options)}` : ''}` };
      });
  const host = on('host');
  const webgpu = on('webgpu');
  const create = (c: PlanFixtureCase) => (d: string, s: ParallelState) => models.createModel(d, s, c.options ?? {});

  describe.runIf(host.length > 0).each(hostIsas.map((isa) => ({ isa })))(`${family} fixtures through the host executor (isa $isa)`, ({ isa }) => {
    beforeAll(async () => {
      await initBackend({ prefer: 'wasm' });
      useCpuQuantKernels(true);
    });
    afterAll(() => void useCpuQuantKernels(false));
    it.each(host)('$name', async (c) => {
      const r = await hostFixtureCheck(fixtureDir(c.fixture), c, create(c), { isa, threads: 2 });
      expect(r, `${c.name}: no result`).not.toBeNull();
      console.log(r!.line);
      expect(r!.failures).toEqual([]);
    });
  });

  describe.runIf(webgpu.length > 0)(`${family} fixtures through the WebGPU executor`, () => {
    beforeAll(async () => {
      await initBackend({ prefer: 'webgpu' });
      await tf.setBackend('cpu');
    }, 60_000);
    it.each(webgpu)('$name', async (c) => {
      const r = await webgpuFixtureCheck(fixtureDir(c.fixture), c, create(c));
      expect(r, `${c.name}: no result`).not.toBeNull();
      console.log(r!.line);
      expect(r!.failures).toEqual([]);
    });
  });
}
