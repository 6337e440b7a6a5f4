/**
 * Mixtral (a FusedMoE in every layer, `block_sparse_moe` names, softmax top-k renormalised, 3 experts, Mistral's
 * sliding window) through the device plan on the host executor against the same rank's tfjs forward (wasm,
 * @weft/cpu-kernels' a8 gemms for packed weights) and the fixtures' Hugging Face logits, the q8_0 / q4_0 a8
 * files included (layers' hostFixtureParity: batched prefill, a chunk, batched decodes).
 */
import { fileURLToPath } from 'node:url';
import { initBackend, type WeightFormat } from '@weft/core';
import { HOST_PARITY_BOUNDS as B, hostFixtureCheck, useCpuQuantKernels } from '@weft/layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const CASES = [
  { fixture: 'mixtral-tiny', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'mixtral-tiny', file: 'expected-q8_0-a8.json', format: { ...fp32, quantization: 'q8_0' as const }, hf: B.a8, tfjs: B.a8 },
  { fixture: 'mixtral-tiny', file: 'expected-q4_0-a8.json', format: { ...fp32, quantization: 'q4_0' as const }, hf: B.a8, tfjs: B.a8 },
  { fixture: 'mixtral-3e', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'mixtral-swa-tiny', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
] as const;

beforeAll(async () => {
  await initBackend({ prefer: 'wasm' });
  useCpuQuantKernels(true);
});

describe('mixtral fixtures through the host executor', () => {
  it.each(CASES)('$fixture $file', async (c) => {
    const { failures, line } = (await hostFixtureCheck(fixture(c.fixture), c, (d, s) => registration.createModel(d, s), { threads: 2 }))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
