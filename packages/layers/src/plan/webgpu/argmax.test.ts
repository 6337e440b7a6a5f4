/**
 * The greedy argmax kernel over a vocabulary of many passes of its 256 threads (3,000 of 3,008 columns): the
 * first maximum wins, ties across threads and across one thread's passes included, and columns past the
 * vocabulary are never candidates.
 */
import { describe, expect, it } from 'vitest';
import { buildAttentionMetadata, positionsOf } from '../../attention-metadata.js';
import { randomHost } from '../../test-entries/random.js';
import { PlanBuilder, whole } from '../builder.js';
import { useTestDevice } from './test-device.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

const gpu = useTestDevice();

describe('argmax', () => {
  it('first maximum of 3,000 columns per sampled row, ties to the lower column', async () => {
    const V = 3000;
    const W = 3008;
    const b = new PlanBuilder();
    const x = b.act('x', W);
    const l = b.act('logits', W, 'sampled');
    b.op({ kind: 'gatherSampled', x: whole(x), out: whole(l) });
    const plan = b.build(V, { inHidden: x, logits: l });
    const R = 6;
    const xs = randomHost([R, W], 5, 1).data as Float32Array;
    // Row 0: max in a late pass; row 1: a tie between columns 2999 and 5 (two threads: the lower wins); row 2:
    // a tie between 300 and 1324 (one thread, passes 2 and 6); row 3: a larger value past the vocabulary; row 4:
    // a tie between 260 and 516 (one thread, passes 2 and 3); row 5: random.
    const set = (r: number, c: number, v: number) => (xs[r * W + c] = v);
    set(0, 768 + 1024 * 2 + 7, 50);
    set(1, 2999, 40);
    set(1, 5, 40);
    set(2, 1324, 30);
    set(2, 300, 30);
    set(3, 3003, 99);
    set(3, 17, 20);
    set(4, 516, 25);
    set(4, 260, 25);
    const meta = buildAttentionMetadata(Array.from({ length: R }, (_, s) => ({ seqId: s, queryLen: 1, contextLen: 0, blockTable: [s] })), 4);
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 8, maxSeqs: 8, maxModelLen: 8 });
    try {
      await ex.initCaches(8, 4);
      const o = await ex.step({ tokenIds: new Int32Array(R), positions: positionsOf(meta), seqs: meta.seqs, blockSize: 4, sampledRows: Int32Array.from({ length: R }, (_, i) => i), hidden: xs });
      const want = Array.from({ length: R }, (_, r) => {
        let best = 0;
        for (let i = 1; i < V; i++) if (xs[r * W + i]! > xs[r * W + best]!) best = i;
        return best;
      });
      expect(want.slice(0, 5)).toEqual([768 + 2048 + 7, 5, 300, 17, 260]);
      expect(Array.from(o.greedy!)).toEqual(want);
    } finally {
      ex.dispose();
    }
  });
});
