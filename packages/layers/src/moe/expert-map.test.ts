import { describe, expect, it } from 'vitest';
import { determineExpertMap, expertOwners } from './expert-map.js';

describe('determineExpertMap (vLLM determine_expert_map)', () => {
  it('linear: E // ep each, the first E % ep ranks one more, contiguous', () => {
    const maps = [0, 1, 2].map((r) => determineExpertMap(3, r, 8, 'linear'));
    expect(maps.map((m) => m.localNum)).toEqual([3, 3, 2]);
    expect(maps.map((m) => m.globalIds)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7]]);
    expect(Array.from(maps[1]!.map)).toEqual([-1, -1, -1, 0, 1, 2, -1, -1]);
  });

  it('round_robin: rank r holds r, r + ep, …', () => {
    const maps = [0, 1, 2].map((r) => determineExpertMap(3, r, 8, 'round_robin'));
    expect(maps.map((m) => m.globalIds)).toEqual([[0, 3, 6], [1, 4, 7], [2, 5]]);
    expect(Array.from(maps[2]!.map)).toEqual([-1, -1, 0, -1, -1, 1, -1, -1]);
  });

  it('ep 1 holds everything', () => {
    const m = determineExpertMap(1, 0, 5);
    expect(m.localNum).toBe(5);
    expect(Array.from(m.map)).toEqual([0, 1, 2, 3, 4]);
  });

  it.each([
    [16, 4],
    [16, 3],
    [8, 8],
    [13, 5],
    [3, 4],
  ])('every one of %i experts lives on exactly one of %i ranks, both strategies', (E, ep) => {
    for (const strategy of ['linear', 'round_robin'] as const) {
      const count = new Array<number>(E).fill(0);
      for (let r = 0; r < ep; r++) {
        const m = determineExpertMap(ep, r, E, strategy);
        expect(m.localNum).toBe(Math.floor(E / ep) + (r < E % ep ? 1 : 0));
        m.globalIds.forEach((g, l) => {
          expect(m.map[g]).toBe(l);
          count[g]!++;
        });
        expect(Array.from(m.map).filter((v) => v >= 0).length).toBe(m.localNum);
        expect([...m.globalIds].sort((a, b) => a - b)).toEqual(m.globalIds);
      }
      expect(count.every((c) => c === 1)).toBe(true);
      const owners = expertOwners(ep, E, strategy);
      owners.forEach((r, g) => expect(determineExpertMap(ep, r, E, strategy).map[g]).toBeGreaterThanOrEqual(0));
    }
  });

  it('rejects bad sizes and strategies', () => {
    expect(() => determineExpertMap(2, 2, 8)).toThrow(/rank 2 is outside \[0, 2\)/);
    expect(() => determineExpertMap(0, 0, 8)).toThrow(/positive integer/);
    expect(() => determineExpertMap(2, 0, 8, 'random' as 'linear')).toThrow(/unknown expert placement strategy 'random'/);
  });
});
