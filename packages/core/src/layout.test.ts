import { describe, expect, it } from 'vitest';
import { globalRank, groupOf, rankCoords, rankLayout } from './layout.js';
import { resolveParallelConfig } from './parallel-config.js';
import { getPpIndices, defaultPartition } from './pp-indices.js';
import { divide, shardRange, vocabRange } from './shape.js';

describe('vLLM rank layout', () => {
  it('world 8, tp 2, pp 2, dp 2 (the worked example)', () => {
    const l = rankLayout({ tp: 2, pp: 2, dp: 2 });
    expect(l.tp).toEqual([[0, 1], [2, 3], [4, 5], [6, 7]]);
    expect(l.pp).toEqual([[0, 2], [1, 3], [4, 6], [5, 7]]);
    expect(l.dp).toEqual([[0, 4], [2, 6], [1, 5], [3, 7]]);
    expect(l.ep).toEqual([[0, 1, 4, 5], [2, 3, 6, 7]]);
    expect(l.world).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
  });

  it.each([
    [{ tp: 4, pp: 1, dp: 1 }, { tp: [[0, 1, 2, 3]], pp: [[0], [1], [2], [3]], dp: [[0], [1], [2], [3]], ep: [[0, 1, 2, 3]] }],
    [{ tp: 1, pp: 4, dp: 1 }, { tp: [[0], [1], [2], [3]], pp: [[0, 1, 2, 3]], dp: [[0], [1], [2], [3]], ep: [[0], [1], [2], [3]] }],
    [{ tp: 2, pp: 1, dp: 2 }, { tp: [[0, 1], [2, 3]], pp: [[0], [1], [2], [3]], dp: [[0, 2], [1, 3]], ep: [[0, 1, 2, 3]] }],
    [{ tp: 1, pp: 2, dp: 2 }, { tp: [[0], [1], [2], [3]], pp: [[0, 1], [2, 3]], dp: [[0, 2], [1, 3]], ep: [[0, 2], [1, 3]] }],
  ])('%o', (cfg, want) => {
    const l = rankLayout(cfg);
    expect({ tp: l.tp, pp: l.pp, dp: l.dp, ep: l.ep }).toEqual(want);
  });

  it('coordinates round-trip and every rank is in exactly one group of each kind', () => {
    const cfg = { tp: 3, pp: 2, dp: 2 };
    const l = rankLayout(cfg);
    for (let r = 0; r < l.worldSize; r++) {
      expect(globalRank(rankCoords(r, cfg), cfg)).toBe(r);
      for (const kind of ['tp', 'pp', 'dp', 'ep'] as const) {
        expect(l[kind].filter((g) => g.includes(r))).toHaveLength(1);
        expect(groupOf(l, kind, r).ranks).toContain(r);
      }
    }
  });
});

describe('parallel config', () => {
  it('world size must equal dp·pp·tp, with the sizes named', () => {
    expect(() => resolveParallelConfig({ worldSize: 6, tp: 2, pp: 2 })).toThrow(/world size 6 does not match tp×pp×dp = 2×2×1 = 4/);
    expect(() => resolveParallelConfig({ tp: 0 })).toThrow(/^tp must be a positive integer, got 0$/);
    expect(resolveParallelConfig({ tp: 2, dp: 2 })).toMatchObject({ tp: 2, pp: 1, dp: 2, ep: false, worldSize: 4 });
  });
});

describe('pipeline split (vLLM get_pp_indices)', () => {
  it('remainder goes to stages −2, −3, … never the last', () => {
    expect(defaultPartition(10, 4)).toEqual([2, 3, 3, 2]);
    expect(defaultPartition(7, 3)).toEqual([2, 3, 2]);
    expect(defaultPartition(8, 3)).toEqual([3, 3, 2]);
    expect(defaultPartition(6, 3)).toEqual([2, 2, 2]);
    expect([0, 1, 2, 3].map((r) => getPpIndices(10, r, 4))).toEqual([[0, 2], [2, 5], [5, 8], [8, 10]]);
  });
  it('explicit partition overrides and is validated', () => {
    expect(getPpIndices(6, 1, 2, [1, 5])).toEqual([1, 6]);
    expect(() => getPpIndices(6, 0, 2, [3, 2])).toThrow(/sums to 5, num_hidden_layers=6/);
    expect(() => getPpIndices(6, 0, 2, [6, 0])).toThrow(/positive/);
    expect(() => getPpIndices(2, 0, 3)).toThrow(/pp=3 is larger than num_hidden_layers=2/);
  });
});

describe('shape helpers', () => {
  it('divide names the sizes and suggests valid splits', () => {
    expect(divide(32, 4, 'num_attention_heads')).toBe(8);
    expect(() => divide(12, 5, 'num_attention_heads')).toThrow('num_attention_heads=12 is not divisible by tp=5 (choose tp from 1, 2, 3, 4, 6, 12)');
  });
  it('shardRange and vocabRange', () => {
    expect(shardRange(12, 2, 3)).toEqual([8, 12]);
    expect(() => shardRange(10, 0, 3)).toThrow(/not divisible/);
    expect(vocabRange(131, 1, 2)).toEqual({ padded: 256, start: 128, end: 256 });
  });
});
