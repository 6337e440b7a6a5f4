/**
 * DeepSeek on the WebGPU executor at tp 2 on real worker threads (two devices on one adapter): V3 with the
 * latent MLA cache (experts split over tp: the moe op gives each rank its partial sum, the recorded
 * all-reduce completes it) and V2-Lite; rank 0 equals the ranks' tfjs forward (cpu) and HF.
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
  { dir: fixture('deepseek-v3-tiny'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.tfjs, registration, options: { mlaKvCache: 'latent' } },
  { dir: fixture('deepseek-v2-lite-tiny'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.tfjs, registration, options: { mlaKvCache: 'latent' } },
];

describe('DeepSeek on the WebGPU executor at tp 2 (two worker-thread ranks, one adapter)', () => {
  it.each(CASES)('$dir $file', async (c) => {
    const [r0, r1] = (await runRanks({ parallel: { tp: 2 }, entry, args: c, backend: 'webgpu' })) as ({ failures: string[]; line: string } | null)[];
    expect(r1).toBeNull();
    console.log(`tp 2: ${r0!.line}`);
    expect(r0!.failures).toEqual([]);
  });
});
