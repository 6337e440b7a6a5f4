/**
 * Mixtral fixtures (routed experts, sliding window) through the device plan on the WebGPU executor (Dawn:
 * Mesa's OpenGL here and in CI) against the same loaded rank's tfjs forward (cpu) and the fixtures' Hugging
 * Face logits: the router's logits are routed on the host, each expert's rows run on the device.
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
const CASES = ['mixtral-tiny', 'mixtral-3e', 'mixtral-swa-tiny'].map((f) => ({ fixture: f, file: 'expected.json', format: fp32 }));

beforeAll(async () => {
  await initBackend({ prefer: 'webgpu' });
  await tf.setBackend('cpu');
}, 60_000);

describe('Mixtral fixtures through the WebGPU executor', () => {
  it.each(CASES)('$fixture $file', async (c) => {
    const { failures, line } = (await webgpuFixtureCheck(fixture(c.fixture), { ...c, hf: B.fixture, tfjs: B.tfjs }, (d, s) => registration.createModel(d, s)))!;
    console.log(line);
    expect(failures).toEqual([]);
  });
});
