/**
 * Gemma 2 (logit soft caps, GELU-tanh, alternating windows, scaled embedding, 1 + w norms) fixtures through the device plan on the WebGPU executor (Dawn: Mesa's
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
  { fixture: 'gemma2-tiny', file: 'expected.json', format: fp32 },
  { fixture: 'gemma2-mqa-untied', file: 'expected.json', format: fp32 },
];

beforeAll(async () => {
  await initBackend({ prefer: 'webgpu' });
  await tf.setBackend('cpu');
}, 60_000);

describe('Gemma 2 (logit soft caps, GELU-tanh, alternating windows, scaled embedding, 1 + w norms) fixtures through the WebGPU executor', () => {
  it.each(CASES)('$fixture $file', async (c) => {
    const { failures, line } = (await webgpuFixtureCheck(fixture(c.fixture), { ...c, hf: B.fixture, tfjs: B.tfjs }, (d, s) => registration.createModel(d, s)))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
