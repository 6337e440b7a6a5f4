import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { rankLayout } from '@weft/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GroupCoordinator, SoloCommunicator, runRanks } from './index.js';
import type { GroupReport } from './test-entries/layout.js';

const entry = new URL('./test-entries/layout.ts', import.meta.url);
type Reports = Record<'world' | 'tp' | 'pp' | 'dp' | 'ep', GroupReport>[];

function expectMatchesLayout(reports: Reports, tp: number, pp: number, dp: number) {
  const layout = rankLayout({ tp, pp, dp });
  reports.forEach((byKind, rank) => {
    for (const kind of ['world', 'tp', 'pp', 'dp', 'ep'] as const) {
      const index = layout[kind].findIndex((g) => g.includes(rank));
      const ranks = layout[kind][index]!;
      const me = ranks.indexOf(rank);
      const ws = ranks.length;
      expect(byKind[kind], `rank ${rank} ${kind}`).toEqual({
        uniqueName: `${kind}:${index}`,
        rank,
        ranks,
        worldSize: ws,
        rankInGroup: me,
        localRank: rank,
        firstRank: ranks[0],
        lastRank: ranks[ws - 1],
        isFirstRank: me === 0,
        isLastRank: me === ws - 1,
        nextRank: ranks[(me + 1) % ws],
        prevRank: ranks[(me - 1 + ws) % ws],
        hasMq: ws > 1 && (kind === 'tp' || kind === 'world'),
        sameCommunicator: true,
        hasDeviceCommunicator: ws > 1,
        rankSum: ranks.reduce((a, b) => a + b, 0),
      });
    }
  });
}

describe('GroupCoordinator attributes, from inside the ranks', () => {
  it('world 8 = tp 2 × pp 2 × dp 2: the vLLM example', async () => {
    const reports = (await runRanks({ parallel: { tp: 2, pp: 2, dp: 2 }, entry, backend: 'cpu' })) as Reports;
    const lists = (kind: 'tp' | 'pp' | 'dp' | 'ep') => [...new Set(reports.map((r) => JSON.stringify(r[kind].ranks)))].map((s) => JSON.parse(s) as number[]);
    expect(lists('tp')).toEqual([[0, 1], [2, 3], [4, 5], [6, 7]]);
    expect(lists('pp')).toEqual([[0, 2], [1, 3], [4, 6], [5, 7]]);
    expect(lists('dp')).toEqual([[0, 4], [1, 5], [2, 6], [3, 7]]);
    expect(lists('ep')).toEqual([[0, 1, 4, 5], [2, 3, 6, 7]]);
    // group indices follow vLLM's row order: DP [0,4] [2,6] [1,5] [3,7]
    expect(reports[2]!.dp.uniqueName).toBe('dp:1');
    expect(reports[1]!.dp.uniqueName).toBe('dp:2');
    expect(reports[5]!.pp).toMatchObject({ ranks: [5, 7], rankInGroup: 0, nextRank: 7, prevRank: 7, isFirstRank: true });
    expect(reports[6]!.ep).toMatchObject({ ranks: [2, 3, 6, 7], rankInGroup: 2, nextRank: 7, prevRank: 3, firstRank: 2, lastRank: 7 });
    expect(reports[7]!.ep).toMatchObject({ nextRank: 2, isLastRank: true });
    expectMatchesLayout(reports, 2, 2, 2);
  });

  for (const [tp, pp, dp] of [
    [4, 1, 1],
    [1, 4, 1],
    [2, 1, 2],
    [1, 2, 2],
  ] as const) {
    it(`tp ${tp}, pp ${pp}, dp ${dp}`, async () => {
      const reports = (await runRanks({ parallel: { tp, pp, dp }, entry, backend: 'cpu' })) as Reports;
      expectMatchesLayout(reports, tp, pp, dp);
    });
  }
});

describe('GroupCoordinator at world size 1', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('every op hands back its input, and send/recv to oneself works', async () => {
    const g = new GroupCoordinator({ rank: 3, ranks: [3], uniqueName: 'tp:3', cpuGroup: new SoloCommunicator('tp:3') });
    expect([g.firstRank, g.lastRank, g.nextRank, g.prevRank, g.rankInGroup, g.worldSize]).toEqual([3, 3, 3, 3, 0, 1]);
    expect(g.deviceCommunicator).toBeNull();
    const t = tf.tensor([[1, 2], [3, 4]]);
    expect(await g.allReduce(t)).toBe(t);
    expect(await g.allReduce(t, 'max')).toBe(t);
    expect(await g.allGather(t, 0)).toBe(t);
    expect(await g.reduceScatter(t, 1)).toBe(t);
    expect(await g.gather(t)).toBe(t);
    expect(await g.broadcast(t)).toBe(t);
    expect(await g.broadcastObject({ a: 1 })).toEqual({ a: 1 });
    const chunks = [t];
    expect(await g.allToAll(chunks)).toBe(chunks);
    await g.barrier();
    await g.send(t);
    const back = await g.recv();
    expect(back.arraySync()).toEqual([[1, 2], [3, 4]]);
    back.dispose();
    await expect(g.recv()).rejects.toThrow(/nothing sent/);
    await expect(g.broadcast(null)).rejects.toThrow(/passed null/);
    t.dispose();
  });

  it('rejects a communicator of the wrong size', () => {
    expect(() => new GroupCoordinator({ rank: 0, ranks: [0, 1], uniqueName: 'tp:0', cpuGroup: new SoloCommunicator('tp:0') })).toThrow(
      /rank 0 of 1, expected rank 0 of 2/,
    );
  });
});
