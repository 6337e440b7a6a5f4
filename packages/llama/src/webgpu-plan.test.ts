/**
 * Llama and Mistral fixtures through the device plan on the WebGPU executor
 * (Dawn: Mesa's OpenGL here and in CI) against the same loaded rank's tfjs
 * forward on the cpu backend and the fixtures' Hugging Face logits: fp32,
 * bf16, and Q8_0 / Q4_0 weight-only (the WGSL kernels dequantize the blocks;
 * activations stay fp32, as in the expected-q*_0.json files), over a batched
 * prefill, a chunk and batched decodes (layers' fixtureSchedule).
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
  { fixture: 'llama-tiny', file: 'expected.json', format: fp32 },
  { fixture: 'llama-bf16', file: 'expected.json', format: { ...fp32, dtype: 'bfloat16' as const } },
  { fixture: 'llama-tiny', file: 'expected-q8_0.json', format: { ...fp32, quantization: 'q8_0' as const } },
  { fixture: 'llama-tiny', file: 'expected-q4_0.json', format: { ...fp32, quantization: 'q4_0' as const } },
  { fixture: 'llama-mqa-tied-llama3', file: 'expected.json', format: fp32 },
  { fixture: 'mistral-swa-tiny', file: 'expected.json', format: fp32 },
];

beforeAll(async () => {
  await initBackend({ prefer: 'webgpu' });
  await tf.setBackend('cpu');
}, 60_000);

describe('Llama fixtures through the WebGPU executor', () => {
  it.each(CASES)('$fixture $file', async (c) => {
    const { failures, line } = (await webgpuFixtureCheck(fixture(c.fixture), { ...c, hf: B.fixture, tfjs: B.tfjs }, (d, s) => registration.createModel(d, s)))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
