/**
 * Qwen2 / Qwen3 / Qwen3-MoE (biases, q/k norm, sliding windows, tied heads, routed experts) fixtures through the device plan on the WebGPU executor (Dawn: Mesa's
 * OpenGL here and in CI) against the same loaded rank's tfjs forward (cpu)
 * and the fixtures' Hugging Face logits (layers' webgpuFixtureCheck: batched
 * prefill, a chunk, batched decodes; the llama package's test has the formats).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { fileURLToPath } from 'node:url';
import { initBackend, type WeightFormat } from '@weft/core';
import { WEBGPU_PARITY_BOUNDS as B, webgpuFixtureCheck } from '@weft/layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const CASES = [
  { fixture: 'qwen2-tiny', file: 'expected.json', format: fp32 },
  { fixture: 'qwen2-swa-tied', file: 'expected.json', format: fp32 },
  { fixture: 'qwen3-tiny', file: 'expected.json', format: fp32 },
  { fixture: 'qwen3-bias-tied', file: 'expected.json', format: fp32 },
  // MoE: router logits routed on the host, experts in ascending id on the device.
  { fixture: 'qwen3-moe-tiny', file: 'expected.json', format: fp32 },
  { fixture: 'qwen3-moe-swa', file: 'expected.json', format: fp32 },
  { fixture: 'qwen3-moe-5e-dense', file: 'expected.json', format: fp32 },
];

beforeAll(async () => {
  await initBackend({ prefer: 'webgpu' });
  await tf.setBackend('cpu');
}, 60_000);

describe('Qwen2 / Qwen3 (biases, q/k norm, sliding windows, tied heads) fixtures through the WebGPU executor', () => {
  it.each(CASES)('$fixture $file', async (c) => {
    const { failures, line } = (await webgpuFixtureCheck(fixture(c.fixture), { ...c, hf: B.fixture, tfjs: B.tfjs }, (d, s) => registration.createModel(d, s)))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
