/** Report every GroupCoordinator's attributes from inside the rank, and check each group really connects its ranks. */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '../group-coordinator.js';
import type { RankContext } from '../launcher.js';

export interface GroupReport {
  uniqueName: string;
  rank: number;
  ranks: number[];
  worldSize: number;
  rankInGroup: number;
  localRank: number;
  firstRank: number;
  lastRank: number;
  isFirstRank: boolean;
  isLastRank: boolean;
  nextRank: number;
  prevRank: number;
  hasMq: boolean;
  sameCommunicator: boolean;
  hasDeviceCommunicator: boolean;
  /** allReduce of the global ranks over the group. */
  rankSum: number;
}

const KINDS = ['world', 'tp', 'pp', 'dp', 'ep'] as const;

export async function main(ctx: RankContext): Promise<Record<string, GroupReport>> {
  const out: Record<string, GroupReport> = {};
  for (const kind of KINDS) {
    const g: GroupCoordinator = ctx.state[kind];
    const x = tf.tensor([ctx.rank], [1], 'int32');
    const sum = await g.allReduce(x);
    const rankSum = (await sum.data())[0]!;
    if (sum !== x) sum.dispose();
    x.dispose();
    out[kind] = {
      uniqueName: g.uniqueName,
      rank: g.rank,
      ranks: g.ranks,
      worldSize: g.worldSize,
      rankInGroup: g.rankInGroup,
      localRank: g.localRank,
      firstRank: g.firstRank,
      lastRank: g.lastRank,
      isFirstRank: g.isFirstRank,
      isLastRank: g.isLastRank,
      nextRank: g.nextRank,
      prevRank: g.prevRank,
      hasMq: g.mqBroadcaster !== null,
      sameCommunicator: g.cpuGroup === g.deviceGroup,
      hasDeviceCommunicator: g.deviceCommunicator !== null,
      rankSum,
    };
  }
  return out;
}
