/**
 * Llama and Mistral fixtures through the device plan on the host executor
 * (@weft/cpu-kernels only, native and portable) against the same loaded
 * rank's tfjs forward on wasm with the CPU kernels registered (a tp 1 rank
 * today) and against the fixtures' Hugging Face logits: fp32, bf16, and
 * Q8_0 / Q4_0 with activations quantized to Q8_0 (the a8 files), over a
 * batched prefill, a chunk and batched decodes (layers' fixtureSchedule).
 * Two a8 paths may round one activation to neighbouring quanta: plan against
 * tfjs then differs by up to the a8 bound, as each does against HF.
 */
import { fileURLToPath } from 'node:url';
import { initBackend, type WeightFormat } from '@weft/core';
import { HOST_PARITY_BOUNDS as B, hostFixtureCheck, useCpuQuantKernels } from '@weft/layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const CASES = [
  { fixture: 'llama-tiny', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'llama-bf16', file: 'expected.json', format: { ...fp32, dtype: 'bfloat16' as const }, hf: B.fixture, tfjs: B.exact },
  { fixture: 'llama-tiny', file: 'expected-q8_0-a8.json', format: { ...fp32, quantization: 'q8_0' as const }, hf: B.a8, tfjs: B.a8 },
  { fixture: 'llama-tiny', file: 'expected-q4_0-a8.json', format: { ...fp32, quantization: 'q4_0' as const }, hf: B.a8, tfjs: B.a8 },
  { fixture: 'llama-mqa-tied-llama3', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'mistral-swa-tiny', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
];

beforeAll(async () => {
  await initBackend({ prefer: 'wasm' });
  useCpuQuantKernels(true);
});

describe.each([{ isa: undefined }, { isa: 'portable' }])('Llama fixtures through the host executor (isa $isa)', ({ isa }) => {
  it.each(CASES)('$fixture $file', async (c) => {
    const { failures, line } = (await hostFixtureCheck(fixture(c.fixture), c, (d, s) => registration.createModel(d, s), { isa, threads: 2 }))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
