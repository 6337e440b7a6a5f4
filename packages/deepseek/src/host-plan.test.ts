/**
 * DeepSeek V3 and V2-Lite (MLA in both cache forms, MoE with shared experts, sigmoid + bias grouped routing and
 * softmax greedy routing) through the device plan on the host executor against the same rank's tfjs forward
 * (wasm, @weft/cpu-kernels' a8 gemms for packed weights) and the fixtures' Hugging Face logits (layers'
 * hostFixtureParity: batched prefill, a chunk, batched decodes).
 */
import { fileURLToPath } from 'node:url';
import { initBackend, type WeightFormat } from '@weft/core';
import { HOST_PARITY_BOUNDS as B, hostFixtureCheck, useCpuQuantKernels } from '@weft/layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const q8: WeightFormat = { dtype: 'float32', quantization: 'q8_0' };
const q4: WeightFormat = { dtype: 'float32', quantization: 'q4_0' };
const CASES = [
  { fixture: 'deepseek-v3-tiny', cache: 'latent', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'deepseek-v3-tiny', cache: 'latent', file: 'expected-q8_0-a8.json', format: q8, hf: B.a8, tfjs: B.a8 },
  { fixture: 'deepseek-v3-tiny', cache: 'latent', file: 'expected-q4_0-a8.json', format: q4, hf: B.a8, tfjs: B.a8 },
  { fixture: 'deepseek-v3-tiny', cache: 'full', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'deepseek-v3-tiny', cache: 'full', file: 'expected-q8_0-a8.json', format: q8, hf: B.a8, tfjs: B.a8 },
  { fixture: 'deepseek-v2-lite-tiny', cache: 'latent', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'deepseek-v3-16e-top4', cache: 'latent', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
] as const;

beforeAll(async () => {
  await initBackend({ prefer: 'wasm' });
  useCpuQuantKernels(true);
});

describe('deepseek fixtures through the host executor', () => {
  it.each(CASES)('$fixture $file, $cache cache', async (c) => {
    const { failures, line } = (await hostFixtureCheck(fixture(c.fixture), c, (d, s) => registration.createModel(d, s, { mlaKvCache: c.cache }), { threads: 2 }))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
