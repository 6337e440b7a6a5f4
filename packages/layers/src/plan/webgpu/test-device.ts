/// <reference types="@webgpu/types" />
/**
 * Test support for the WebGPU executor's kernel tests: Dawn (Mesa's OpenGL in CI) for the kernels and the
 * tfjs cpu backend for the references, one device per test file.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '@weft/core';
import { afterAll, beforeAll } from 'vitest';
import { requestDevice } from './device.js';

/** Registers the file's setup and teardown; the returned function gives the device inside tests. */
export function useTestDevice(): () => GPUDevice {
  let device: GPUDevice | undefined;
  beforeAll(async () => {
    await initBackend({ prefer: 'webgpu' });
    await tf.setBackend('cpu');
    device = await requestDevice();
  }, 60_000);
  afterAll(() => device?.destroy());
  return () => device!;
}
