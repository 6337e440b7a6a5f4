/**
 * DeepSeek fixtures (MLA in both cache forms, dense then routed-expert layers, grouped routing with a
 * correction bias) through the device plan on the WebGPU executor (Dawn: Mesa's OpenGL here and in CI)
 * against the same loaded rank's tfjs forward (cpu: Q8_0 / Q4_0 weight-only there, as in the WGSL kernels)
 * and the fixtures' Hugging Face logits.
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
  { fixture: 'deepseek-v3-tiny', cache: 'latent', file: 'expected.json', format: fp32 },
  { fixture: 'deepseek-v3-tiny', cache: 'full', file: 'expected.json', format: fp32 },
  { fixture: 'deepseek-v2-lite-tiny', cache: 'latent', file: 'expected.json', format: fp32 },
  { fixture: 'deepseek-v3-16e-top4', cache: 'latent', file: 'expected.json', format: fp32 },
] as const;

beforeAll(async () => {
  await initBackend({ prefer: 'webgpu' });
  await tf.setBackend('cpu');
}, 60_000);

describe('DeepSeek fixtures through the WebGPU executor', () => {
  it.each(CASES)('$fixture $file, $cache cache', async (c) => {
    const { failures, line } = (await webgpuFixtureCheck(fixture(c.fixture), { ...c, hf: B.fixture, tfjs: B.tfjs }, (d, s) => registration.createModel(d, s, { mlaKvCache: c.cache })))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
