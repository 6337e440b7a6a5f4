/**
 * Prefill attention (the flash kernel: K/V tiles shared by a block of rows, online softmax over key tiles)
 * against Attention + PagedKVCache on the tfjs cpu backend, at step sizes that take several key tiles:
 * two long prompts in one step, a chunk after cached context beside decode rows, sliding windows that cut
 * across tiles, soft caps, head dims 64 and 128, V from K's prefix.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { buildAttentionMetadata, positionsOf, type SeqInput } from '../../attention-metadata.js';
import { randomHost } from '../../test-entries/random.js';
import { attentionSetup, useTestDevice } from './test-device.js';
import { flashConfig } from './wgsl-flash-attention.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

const gpu = useTestDevice();

const BS = 8;
const BLOCKS = 64;

describe('prefill attention (flash, and the staged kernel) against Attention + PagedKVCache', () => {
  const configs = [
    { name: 'GQA 8/1, head 64 (TinyLlama)', H: 8, Hk: 1, D: 64, Dv: 64, window: null, cap: null, prefix: false },
    { name: 'GQA 4/2, head 128, window 21, soft cap 50', H: 4, Hk: 2, D: 128, Dv: 128, window: 21, cap: 50, prefix: false },
    { name: 'MHA 3/3, head 32, v 16, window 40', H: 3, Hk: 3, D: 32, Dv: 16, window: 40, cap: null, prefix: false },
    { name: 'latent (V = K prefix), 16/1, head 40, v 32', H: 16, Hk: 1, D: 40, Dv: 32, window: null, cap: null, prefix: true },
    { name: 'GQA 64/1, head 8 (more heads than a workgroup holds)', H: 64, Hk: 1, D: 8, Dv: 8, window: null, cap: null, prefix: false },
    { name: 'GQA 8/2, head 16, window 30, 64 query vectors a workgroup', H: 8, Hk: 2, D: 16, Dv: 16, window: 30, cap: null, prefix: false, flash: { QV: 64, BC: 32 } },
    { name: 'GQA 8/1, head 64, 16 query vectors, 32 keys a tile', H: 8, Hk: 1, D: 64, Dv: 64, window: null, cap: 20, prefix: false, flash: { QV: 16, BC: 32 } },
    // The staged kernel (no flash: head dims not a multiple of 4, or asked for) on the same steps.
    { name: 'staged kernel, GQA 8/2, head 32, window 30, soft cap 20', H: 8, Hk: 2, D: 32, Dv: 32, window: 30, cap: 20, prefix: false, staged: true },
    { name: 'staged kernel, GQA 4/1, head 18 (no flash)', H: 4, Hk: 1, D: 18, Dv: 18, window: null, cap: null, prefix: false },
  ];
  it.each(configs)('$name: two prompts (70 + 37 rows), then a 45-row chunk after context beside two decode rows', async (c) => {
    const { att, cache, b, qkv, out, op, qW, kW, vW, W } = attentionSetup(c, BLOCKS, BS);
    b.op(op);
    const plan = b.build(1, { inHidden: qkv, hidden: out });
    // Scattered, disjoint blocks per sequence.
    const tables = [0, 1, 2].map((s) => Array.from({ length: 20 }, (_, i) => (s * 20 + i * 17) % BLOCKS));
    const steps: SeqInput[][] = [
      [
        { seqId: 0, queryLen: 70, blockTable: tables[0] },
        { seqId: 1, queryLen: 37, blockTable: tables[1] },
      ],
      [
        { seqId: 0, queryLen: 1, contextLen: 70, blockTable: tables[0] },
        { seqId: 1, queryLen: 45, contextLen: 37, blockTable: tables[1] },
        { seqId: 2, queryLen: 3, blockTable: tables[2] },
      ],
    ];
    const flash = 'flash' in c ? c.flash : undefined;
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 128, maxSeqs: 8, maxModelLen: 160, tuning: { flash, ...('staged' in c ? { attention: 'staged' as const } : {}) } });
    try {
      await ex.initCaches(BLOCKS, BS);
      for (const [i, s] of steps.entries()) {
        const meta = buildAttentionMetadata(s, BS);
        const T = meta.seqs.reduce((n, q) => n + q.queryLen, 0);
        const hidden = randomHost([T, W], 90 + i).data as Float32Array;
        const positions = positionsOf(meta);
        const o = await ex.step({ tokenIds: new Int32Array(T), positions, seqs: meta.seqs, blockSize: BS, sampledRows: Int32Array.from(meta.seqs.map((q) => q.start + q.queryLen - 1)), hidden });
        const x = tf.tensor2d(hidden, [T, W]);
        const q = tf.slice(x, [0, 0], [T, qW]) as tf.Tensor2D;
        const k = tf.slice(x, [0, qW], [T, kW]) as tf.Tensor2D;
        const v = c.prefix ? null : (tf.slice(x, [0, qW + kW], [T, vW]) as tf.Tensor2D);
        const y = await att.forward(q, k, v, meta, cache);
        const want = y.dataSync();
        let worst = 0;
        for (let j = 0; j < want.length; j++) worst = Math.max(worst, Math.abs(o.hidden![j]! - want[j]!));
        expect(worst, `step ${i}`).toBeLessThan(2e-5);
        tf.dispose([x, q, k, y, ...(v ? [v] : [])]);
      }
      // These shapes run the flash kernel (not the staged one) on prefill steps.
      const cfg = flashConfig(op, gpu().limits.maxComputeWorkgroupStorageSize, flash);
      if (c.D % 4) expect(cfg).toBeNull();
      else expect(cfg).not.toBeNull();
      if (flash) expect(cfg!.QV).toBe(flash.QV);
    } finally {
      ex.dispose();
    }
  });
});
