/// <reference types="@webgpu/types" />
/**
 * Test support for the WebGPU executor's kernel tests: Dawn (Mesa's OpenGL in CI) for the kernels and the
 * tfjs cpu backend for the references, one device per test file.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initBackend } from '@weft/core';
import { afterAll, beforeAll } from 'vitest';
import { Attention } from '../../attention.js';
import { PagedKVCache } from '../../paged-kv-cache.js';
import { PlanBuilder, view, whole } from '../builder.js';
import type { AttentionOp } from '../ops.js';
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

/** An attention case: heads, KV heads, head dims, window, soft cap, V from K's prefix (MLA's latent cache). */
export interface AttentionCase {
  H: number;
  Hk: number;
  D: number;
  Dv: number;
  window: number | null;
  cap: number | null;
  prefix: boolean;
}

/**
 * The tfjs reference (Attention over a PagedKVCache of `numBlocks` blocks of `blockSize`) and a plan builder
 * holding the fused qkv input, the output and the attention op over them; the op is not added yet, so a caller
 * can put ops (rotary) before it.
 */
export function attentionSetup(c: AttentionCase, numBlocks: number, blockSize: number) {
  const scale = 1 / Math.sqrt(c.D);
  const att = new Attention({ numHeads: c.H, numKvHeads: c.Hk, headDim: c.D, vHeadDim: c.Dv, scale, valueIsKeyPrefix: c.prefix, slidingWindow: c.window, logitsSoftCap: c.cap });
  const cache = new PagedKVCache({ numBlocks, blockSize, numKvHeads: c.Hk, headDim: c.D, vHeadDim: c.Dv, valueIsKeyPrefix: c.prefix });
  const qW = c.H * c.D;
  const kW = c.Hk * c.D;
  const vW = c.prefix ? 0 : c.Hk * c.Dv;
  const b = new PlanBuilder();
  const qkv = b.act('qkv', qW + kW + vW);
  const out = b.act('out', c.H * c.Dv);
  const op: AttentionOp = {
    kind: 'attention', q: view(qkv, 0, qW), k: view(qkv, qW, kW), v: c.prefix ? null : view(qkv, qW + kW, vW), out: whole(out), cacheIndex: b.nextCache(),
    numHeads: c.H, numKvHeads: c.Hk, headDim: c.D, vHeadDim: c.Dv, scale, logitsSoftCap: c.cap, slidingWindow: c.window, valueIsKeyPrefix: c.prefix,
  };
  return { att, cache, b, qkv, out, op, qW, kW, vW, W: qW + kW + vW };
}
