/**
 * The vec4 decode attention (wgsl-decode-attention.ts: rotary, KV write and attention in one dispatch, the
 * row's own key inside the tiles; the default) and the scalar fused kernel against Attention + PagedKVCache, per head layout, through the executor's
 * `decodeAttention` tuning: batched decode over short contexts and over more than one 256-key tile (with and
 * without a window), after prefills and a chunk. 'vec4' takes the subgroup max where the device has a known
 * subgroup size (Mesa's GL here has none: both tunings run the workgroup-memory max there).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { buildAttentionMetadata, positionsOf, type SeqInput } from '../../attention-metadata.js';
import { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import { randomHost } from '../../test-entries/random.js';
import type { PlanStepInput } from '../executor.js';
import { attentionSetup, useTestDevice } from './test-device.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';
import type { KernelTuning } from './plan-kernels.js';

const gpu = useTestDevice();
const BS = 16;
const BLOCKS = 48;

const configs = [
  { name: 'neox, GQA 4/2, head 16', H: 4, Hk: 2, D: 16, Dv: 16, window: null, cap: null, prefix: false, rope: { neox: true, dim: 16 } },
  { name: 'gpt-j 8 of 12 dims, GQA 8/1, window 300, soft cap 30', H: 8, Hk: 1, D: 12, Dv: 12, window: 300, cap: 30, prefix: false, rope: { neox: false, dim: 8 } },
  { name: 'neox 10 of 20, MHA 2/2, v 8', H: 2, Hk: 2, D: 20, Dv: 8, window: null, cap: null, prefix: false, rope: { neox: true, dim: 10 } },
  { name: 'neox, latent cache (V = K prefix), 4/1, head 24, v 16', H: 4, Hk: 1, D: 24, Dv: 16, window: null, cap: null, prefix: true, rope: { neox: true, dim: 24 } },
  { name: 'neox, GQA 8/1, head 64 (TinyLlama)', H: 8, Hk: 1, D: 64, Dv: 64, window: null, cap: null, prefix: false, rope: { neox: true, dim: 64 } },
];
const tunings: KernelTuning['decodeAttention'][] = ['vec4', 'vec4-nosg', 'scalar'];

describe.each(tunings)('decode attention %s against Attention + PagedKVCache', (decodeAttention) => {
  it.each(configs)('$name: prefills (290 + 6 rows), decodes across 256-key tiles, a chunk beside a decode', async (c) => {
    const { att, cache, b, qkv, out, op, qW, kW, vW, W } = attentionSetup(c, BLOCKS, BS);
    const rope = new RotaryEmbedding({ headSize: c.D, rotaryDim: c.rope.dim, maxPosition: 512, base: 10000, isNeoxStyle: c.rope.neox });
    b.op({ kind: 'rotary', x: op.q, heads: c.H, rope });
    b.op({ kind: 'rotary', x: op.k, heads: c.Hk, rope });
    b.op(op);
    const plan = b.build(1, { inHidden: qkv, hidden: out });
    const tables = [Array.from({ length: 20 }, (_, i) => 47 - 2 * i), Array.from({ length: 20 }, (_, i) => 2 * i)];
    const at = (s: number, q: number, ctx: number): SeqInput => ({ seqId: s, queryLen: q, contextLen: ctx, blockTable: tables[s]! });
    const steps: SeqInput[][] = [[at(0, 290, 0), at(1, 6, 0)], [at(0, 1, 290), at(1, 1, 6)], [at(1, 5, 7), at(0, 1, 291)], [at(0, 1, 292), at(1, 1, 12)], [at(1, 1, 13), at(0, 1, 293)]];
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 320, maxSeqs: 8, maxModelLen: 320, tuning: { decodeAttention } });
    try {
      await ex.initCaches(BLOCKS, BS);
      expect(ex.tags(2, 2, true)).toEqual(['attention']);
      for (const [i, s] of steps.entries()) {
        const meta = buildAttentionMetadata(s, BS);
        const T = meta.seqs.reduce((n, q) => n + q.queryLen, 0);
        const hidden = randomHost([T, W], 90 + i, 1).data as Float32Array;
        const input: PlanStepInput = { tokenIds: new Int32Array(T), positions: positionsOf(meta), seqs: meta.seqs, blockSize: BS, sampledRows: Int32Array.from(meta.seqs.map((q) => q.start + q.queryLen - 1)), hidden };
        const got = (await ex.step(input)).hidden!;
        const x = tf.tensor2d(hidden, [T, W]);
        const pos = tf.tensor1d(input.positions, 'int32');
        const q = rope.rotateColumns(pos, x, 0, c.H) as tf.Tensor2D;
        const k = rope.rotateColumns(pos, x, qW, c.Hk) as tf.Tensor2D;
        const v = c.prefix ? null : (tf.slice(x, [0, qW + kW], [T, vW]) as tf.Tensor2D);
        const y = (await att.forward(q, k, v, meta, cache)).dataSync();
        let d = 0;
        for (let j = 0; j < y.length; j++) d = Math.max(d, Math.abs(got[j]! - y[j]!));
        expect(got.length).toBe(y.length);
        expect(d, `step ${i}`).toBeLessThan(2e-5);
        tf.dispose([x, q, k, pos, ...(v ? [v] : [])]);
      }
    } finally {
      ex.dispose();
      rope.dispose();
      cache.dispose();
    }
  }, 120_000);
});
