import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAttentionMetadata, numTokens, positionsOf, positionsTensor, validateMetadata } from './attention-metadata.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('attention metadata', () => {
  it('lays sequences out back to back and numbers positions from their context', () => {
    const meta = buildAttentionMetadata([
      { seqId: 7, queryLen: 3 },
      { seqId: 2, queryLen: 1, contextLen: 5 },
      { seqId: 9, queryLen: 2, contextLen: 4 },
    ]);
    expect(meta.seqs.map((s) => s.start)).toEqual([0, 3, 4]);
    expect(numTokens(meta)).toBe(6);
    expect(Array.from(positionsOf(meta))).toEqual([0, 1, 2, 5, 4, 5]);
    const p = positionsTensor(meta);
    expect(p.dtype).toBe('int32');
    p.dispose();
  });

  it('rejects gaps, repeats, empty queries and a wrong token count', () => {
    expect(() => buildAttentionMetadata([{ seqId: 1, queryLen: 0 }])).toThrow(/queryLen 0/);
    expect(() => buildAttentionMetadata([{ seqId: 1, queryLen: 1 }, { seqId: 1, queryLen: 1 }])).toThrow(/twice/);
    expect(() => validateMetadata({ seqs: [{ seqId: 1, start: 1, queryLen: 1, contextLen: 0 }] })).toThrow(/starts at row 1/);
    expect(() => validateMetadata(buildAttentionMetadata([{ seqId: 1, queryLen: 2 }]), 3)).toThrow(/covers 2 tokens but the batch has 3/);
  });
});
