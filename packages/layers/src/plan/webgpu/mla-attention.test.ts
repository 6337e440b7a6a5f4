/**
 * Prefill attention over MLA's latent cache (wgsl-mla-attention.ts: queries in registers, key tiles of 8
 * shared by 32 query vectors) against Attention + PagedKVCache on the tfjs cpu backend, at head dims the
 * flash kernel cannot hold (V2-Lite's 576 / 512 with 16 heads on one latent head, and 2 KV heads of 5 query
 * heads with a window and a soft cap): two prompts in one step (70 + 37 rows), then a chunk after context
 * beside decode rows and a new prompt (a mixed step).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { buildAttentionMetadata, positionsOf, type SeqInput } from '../../attention-metadata.js';
import { randomHost } from '../../test-entries/random.js';
import { attentionSetup, useTestDevice } from './test-device.js';
import { flashConfig } from './wgsl-flash-attention.js';
import { mlaAttentionConfig } from './wgsl-mla-attention.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

const gpu = useTestDevice();

const BS = 8;
const BLOCKS = 48;

describe('MLA prefill attention (latent heads too wide for flash) against Attention + PagedKVCache', () => {
  const configs = [
    { name: 'V2-Lite latent: 16 heads on 1, head 576, v 512', H: 16, Hk: 1, D: 576, Dv: 512, window: null, cap: null, prefix: true },
    { name: '10 heads on 2, head 544, v 256, window 30, soft cap 30', H: 10, Hk: 2, D: 544, Dv: 256, window: 30, cap: 30, prefix: true },
  ];
  it.each(configs)('$name', async (c) => {
    const { att, cache, b, qkv, out, op, qW, kW, W } = attentionSetup(c, BLOCKS, BS);
    b.op(op);
    const shared = gpu().limits.maxComputeWorkgroupStorageSize;
    // These shapes take this kernel: flash has no room for them.
    expect(flashConfig(op, shared)).toBeNull();
    expect(mlaAttentionConfig(op, shared)).not.toBeNull();
    const plan = b.build(1, { inHidden: qkv, hidden: out });
    const tables = [0, 1, 2].map((s) => Array.from({ length: 16 }, (_, i) => (s * 16 + i * 7) % BLOCKS));
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
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 128, maxSeqs: 8, maxModelLen: 128 });
    try {
      await ex.initCaches(BLOCKS, BS);
      for (const [i, s] of steps.entries()) {
        const meta = buildAttentionMetadata(s, BS);
        const T = meta.seqs.reduce((n, q) => n + q.queryLen, 0);
        const hidden = randomHost([T, W], 70 + i).data as Float32Array;
        const o = await ex.step({ tokenIds: new Int32Array(T), positions: positionsOf(meta), seqs: meta.seqs, blockSize: BS, sampledRows: Int32Array.from(meta.seqs.map((q) => q.start + q.queryLen - 1)), hidden });
        const x = tf.tensor2d(hidden, [T, W]);
        const q = tf.slice(x, [0, 0], [T, qW]) as tf.Tensor2D;
        const k = tf.slice(x, [0, qW], [T, kW]) as tf.Tensor2D;
        const y = await att.forward(q, k, null, meta, cache);
        const want = y.dataSync();
        let worst = 0;
        let big = 0;
        for (let j = 0; j < want.length; j++) {
          worst = Math.max(worst, Math.abs(o.hidden![j]! - want[j]!));
          big = Math.max(big, Math.abs(want[j]!));
        }
        expect(worst, `step ${i}`).toBeLessThan(2e-5);
        expect(big).toBeGreaterThan(0.05);
        tf.dispose([x, q, k, y]);
      }
    } finally {
      ex.dispose();
    }
  });
});
