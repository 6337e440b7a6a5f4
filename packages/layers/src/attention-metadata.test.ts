import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAttentionMetadata, numTokens, positionsOf, positionsTensor, slotMapping, validateBlockTables, validateMetadata } from './attention-metadata.js';

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
    expect(() => validateMetadata({ seqs: [{ seqId: 1, start: 1, queryLen: 1, contextLen: 0, blockTable: [] }], blockSize: 16 })).toThrow(/starts at row 1/);
    expect(() => buildAttentionMetadata([{ seqId: 1, queryLen: 1 }], 0)).toThrow(/blockSize 0/);
    expect(() => validateMetadata(buildAttentionMetadata([{ seqId: 1, queryLen: 2 }]), 3)).toThrow(/covers 2 tokens but the batch has 3/);
  });

  it('maps every new token to its slot through the block table (vLLM slot_mapping)', () => {
    const meta = buildAttentionMetadata(
      [
        { seqId: 1, queryLen: 4, contextLen: 0, blockTable: [5, 2] },
        { seqId: 2, queryLen: 1, contextLen: 6, blockTable: [0, 7, 3] },
        { seqId: 3, queryLen: 2, contextLen: 2, blockTable: [4, 1] },
      ],
      3,
    );
    expect(meta.blockSize).toBe(3);
    // seq 1: positions 0..3 → block 5 slots 15,16,17 then block 2 slot 6; seq 2: position 6 → block 3 slot 9; seq 3: 2,3 → 14, 3.
    expect(Array.from(slotMapping(meta))).toEqual([15, 16, 17, 6, 9, 14, 3]);
    expect(() => validateBlockTables(meta, 8)).not.toThrow();
    expect(() => validateBlockTables(meta, 7)).toThrow(/sequence 2 block 1 is 7, outside the pool of 7 blocks/);
    const short = buildAttentionMetadata([{ seqId: 4, queryLen: 2, contextLen: 3, blockTable: [1] }], 3);
    expect(() => validateBlockTables(short, 8)).toThrow(/sequence 4 has 5 tokens, which need 2 blocks of 3, but its block table has 1/);
    // A sliding window of 3: position 7's window starts at 5 (block 1): block 0 is never read and may be freed (−1).
    const windowed = buildAttentionMetadata([{ seqId: 5, queryLen: 1, contextLen: 7, blockTable: [-1, 2, 3] }], 3);
    expect(() => validateBlockTables(windowed, 8, 3)).not.toThrow();
    expect(() => validateBlockTables(windowed, 8, 6)).toThrow(/sequence 5 block 0 is -1, outside the pool of 8 blocks/);
    expect(() => validateBlockTables(windowed, 8)).toThrow(/sequence 5 block 0 is -1/);
  });
});
