/**
 * The host executor's fusions: what fuses and what does not, and a fused step bit-equal to the same plan run one
 * op a call (a fused qkv's q and k rotated in one call, then attention over them), on the native path and the
 * portable one.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { availableIsas } from '@weft/cpu-kernels';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAttentionMetadata, type SeqInput } from '../../attention-metadata.js';
import { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import { randomHost } from '../../test-entries/random.js';
import { PlanBuilder, view, whole } from '../builder.js';
import type { PlanOp, RotaryOp } from '../ops.js';
import { fusePlanOps, fuseRotary } from './fuse.js';
import { HostPlanExecutor } from './host-executor.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const H = 4, Hk = 2, D = 16;

/** qkv → rotary q, rotary k → attention: the shape of every Llama layer's attention in the plan. */
function attentionPlan(rope: RotaryEmbedding, kRope: RotaryEmbedding = rope) {
  const b = new PlanBuilder();
  const qkv = b.act('qkv', (H + 2 * Hk) * D), out = b.act('out', H * D);
  b.op({ kind: 'rotary', x: view(qkv, 0, H * D), heads: H, rope });
  b.op({ kind: 'rotary', x: view(qkv, H * D, Hk * D), heads: Hk, rope: kRope });
  b.op({
    kind: 'attention', q: view(qkv, 0, H * D), k: view(qkv, H * D, Hk * D), v: view(qkv, (H + Hk) * D, Hk * D), out: whole(out), cacheIndex: b.nextCache(),
    numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: D, scale: 0.25, logitsSoftCap: null, slidingWindow: null, valueIsKeyPrefix: false,
  });
  return b.build(1, { hidden: out, inHidden: qkv, residual: null, inResidual: null });
}

const rope = (neox = true) => new RotaryEmbedding({ headSize: D, rotaryDim: D, maxPosition: 64, base: 10000, isNeoxStyle: neox });

describe('host executor fusions', () => {
  it('fuses q then k rotary on adjacent heads of one activation with one rope, and nothing else', () => {
    const r = rope();
    const plan = attentionPlan(r);
    const units = fusePlanOps(plan.ops);
    expect(units.map((u) => [u.op.kind, u.at, u.count])).toEqual([['rotary', 0, 2], ['attention', 2, 1]]);
    expect((units[0]!.op as RotaryOp).heads).toBe(H + Hk);
    expect((units[0]!.op as RotaryOp).x.width).toBe((H + Hk) * D);
    // another rope (other frequencies), or k not right after q: kept apart
    expect(fusePlanOps(attentionPlan(r, rope()).ops)).toHaveLength(3);
    const [q, k] = plan.ops as [RotaryOp, RotaryOp];
    expect(fuseRotary(k, q)).toBeNull();
    expect(fuseRotary(q, { ...k, x: { ...k.x, col: k.x.col + D } })).toBeNull();
  });

  describe.each(availableIsas().filter((isa, i) => i === 0 || isa === 'portable'))('(%s)', (isa) => {
    it.each([true, false])('a fused step is bit-equal to one call an op (neox %s)', async (neox) => {
      const plan = attentionPlan(rope(neox));
      const [fused, apart] = [true, false].map((fuse) => new HostPlanExecutor(plan, { isa, threads: 2, fuse }));
      for (const ex of [fused!, apart!]) ex.initCaches(8, 4);
      let seed = 5;
      const schedule: SeqInput[][] = [[{ seqId: 0, queryLen: 7, blockTable: [2, 5] }], [{ seqId: 0, queryLen: 1, contextLen: 7, blockTable: [2, 5] }]];
      for (const steps of schedule) {
        const meta = buildAttentionMetadata(steps, 4);
        const T = steps[0]!.queryLen;
        const positions = Int32Array.from({ length: T }, (_, i) => (steps[0]!.contextLen ?? 0) + i);
        const hidden = randomHost([T, (H + 2 * Hk) * D], seed++).data as Float32Array;
        const input = { tokenIds: new Int32Array(T), positions, seqs: meta.seqs, blockSize: 4, sampledRows: new Int32Array(0), hidden };
        const a = (await fused!.step(input)).hidden!, b = (await apart!.step(input)).hidden!;
        expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);
      }
    });
  });

  it('reports a fused op to the profile hook as the op that ran', async () => {
    const plan = attentionPlan(rope());
    const seen: PlanOp[] = [];
    const ex = new HostPlanExecutor(plan, { profile: (op) => seen.push(op) });
    ex.initCaches(4, 4);
    const meta = buildAttentionMetadata([{ seqId: 0, queryLen: 1, blockTable: [0] }], 4);
    await ex.step({ tokenIds: new Int32Array(1), positions: new Int32Array(1), seqs: meta.seqs, blockSize: 4, sampledRows: new Int32Array(0), hidden: new Float32Array((H + 2 * Hk) * D) });
    expect(seen.map((o) => o.kind)).toEqual(['rotary', 'attention']);
    expect((seen[0] as RotaryOp).heads).toBe(H + Hk);
  });
});
