/**
 * Qwen2 and Qwen3 (qkv bias, per-head q/k norms, tied heads, sliding windows) and Qwen3-MoE through the device plan on the host
 * executor against the same rank's tfjs forward (wasm) and the fixtures' Hugging Face logits (layers'
 * hostFixtureParity: batched prefill, a chunk, batched decodes; the llama package's host-plan test has the formats).
 */
import { fileURLToPath } from 'node:url';
import { initBackend, type WeightFormat } from '@weft/core';
import { HOST_PARITY_BOUNDS as B, hostFixtureCheck, useCpuQuantKernels } from '@weft/layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const CASES = [
  { fixture: 'qwen2-tiny', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'qwen2-swa-tied', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'qwen3-tiny', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'qwen3-bias-tied', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'qwen3-moe-tiny', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'qwen3-moe-tiny', file: 'expected-q4_0-a8.json', format: { ...fp32, quantization: 'q4_0' as const }, hf: B.a8, tfjs: B.a8 },
  { fixture: 'qwen3-moe-tiny', file: 'expected-q8_0-a8.json', format: { ...fp32, quantization: 'q8_0' as const }, hf: B.a8, tfjs: B.a8 },
  { fixture: 'qwen3-moe-5e-dense', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { fixture: 'qwen3-moe-swa', file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
];

beforeAll(async () => {
  await initBackend({ prefer: 'wasm' });
  useCpuQuantKernels(true);
});

describe('qwen fixtures through the host executor', () => {
  it.each(CASES)('$fixture $file', async (c) => {
    const { failures, line } = (await hostFixtureCheck(fixture(c.fixture), c, (d, s) => registration.createModel(d, s), { threads: 2 }))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
