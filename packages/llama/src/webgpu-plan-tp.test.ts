/**
 * The WebGPU executor at tp 2 on real worker threads, both ranks on this machine's one adapter (each its own
 * device): Llama fixtures sharded by the layers' loaders, the row-parallel all-reduces and the vocab-parallel
 * logits gather as plan boundaries through the ranks' groups; rank 0's logits equal the tfjs forward of the
 * same ranks (cpu) and Hugging Face.
 */
import { fileURLToPath } from 'node:url';
import { runRanks } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import { WEBGPU_PARITY_BOUNDS as B, type WebGpuFixtureRankCase } from '@weft/layers';
import { describe, expect, it } from 'vitest';

const entry = new URL('../../layers/src/plan/webgpu/fixture-rank.entry.ts', import.meta.url);
const registration = new URL('./registration.ts', import.meta.url).href;
const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const CASES: WebGpuFixtureRankCase[] = [
  { dir: fixture('llama-tiny'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.tfjs, registration },
  { dir: fixture('llama-tiny'), file: 'expected-q4_0.json', format: { ...fp32, quantization: 'q4_0' }, hf: B.fixture, tfjs: B.tfjs, registration },
  { dir: fixture('llama-bf16'), file: 'expected.json', format: { ...fp32, dtype: 'bfloat16' }, hf: B.fixture, tfjs: B.tfjs, registration },
  { dir: fixture('mistral-swa-tiny'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.tfjs, registration },
];

describe('WebGPU executor at tp 2 (two worker-thread ranks, one adapter)', () => {
  it.each(CASES)('$dir $file', async (c) => {
    const [r0, r1] = (await runRanks({ parallel: { tp: 2 }, entry, args: c, backend: 'webgpu' })) as ({ failures: string[]; line: string } | null)[];
    expect(r1).toBeNull();
    console.log(`tp 2: ${r0!.line}`);
    expect(r0!.failures).toEqual([]);
  });
});
