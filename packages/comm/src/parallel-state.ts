/**
 * A rank's parallel state: its GroupCoordinators, built from the shared
 * memory the launcher allocated. An object handed to whoever needs it, never
 * a module global, so several ranks can share a process.
 */
import { ConfigError, groupOf, rankLayout, type GroupKind, type ParallelConfig, type RankLayout } from '@weft/core';
import { SoloCommunicator, type Communicator } from './communicator.js';
import { GroupCoordinator } from './group-coordinator.js';
import { MessageQueue, type MessageQueueHandle } from './message-queue.js';
import { ShmCommunicator } from './shm-communicator.js';
import { createShmGroup, type ShmGroupHandle, type ShmTuning } from './shm-group.js';

export interface ParallelState {
  rank: number;
  worldSize: number;
  config: ParallelConfig & { worldSize: number };
  world: GroupCoordinator;
  tp: GroupCoordinator;
  pp: GroupCoordinator;
  dp: GroupCoordinator;
  ep: GroupCoordinator;
}

export const GROUP_KINDS: readonly GroupKind[] = ['tp', 'pp', 'dp', 'ep', 'world'];
/** vLLM gives the TP group a message-queue broadcaster; the world group gets one too (driver-style broadcasts). */
const MQ_KINDS: readonly GroupKind[] = ['tp', 'world'];

/** One group's shared resources: null memory for groups of one. */
export interface GroupResources {
  kind: GroupKind;
  index: number;
  ranks: number[];
  shm: ShmGroupHandle | null;
  mq: MessageQueueHandle | null;
}

export type SharedGroups = Record<GroupKind, GroupResources[]>;

export interface SharedGroupOptions {
  scratchBytes: number;
  /** Bytes per ordered pair's send/recv ring; default scratchBytes. */
  ringBytes?: number;
  mqChunks?: number;
  mqChunkBytes?: number;
}

/**
 * Allocate every group of the layout (each kind its own memory, even when two
 * kinds hold the same ranks: their op sequences are independent).
 */
export function createSharedGroups(layout: RankLayout, opts: SharedGroupOptions): SharedGroups {
  const out = {} as SharedGroups;
  for (const kind of GROUP_KINDS) {
    out[kind] = layout[kind].map((ranks, index) => {
      const name = `${kind}:${index}`;
      const multi = ranks.length > 1;
      return {
        kind,
        index,
        ranks,
        shm: multi ? createShmGroup(name, ranks, opts.scratchBytes, opts.ringBytes) : null,
        mq:
          multi && MQ_KINDS.includes(kind)
            ? MessageQueue.create({
                name: `${name} mq`,
                nReaders: ranks.length - 1,
                maxChunks: opts.mqChunks,
                maxChunkBytes: opts.mqChunkBytes,
                readerLabels: ranks.slice(1).map((r) => `rank ${r}`),
              }).handle()
            : null,
      };
    });
  }
  return out;
}

/** The groups `rank` belongs to: what a worker needs, nothing more. */
export function groupsOfRank(all: SharedGroups, layout: RankLayout, rank: number): Record<GroupKind, GroupResources> {
  const out = {} as Record<GroupKind, GroupResources>;
  for (const kind of GROUP_KINDS) out[kind] = all[kind][groupOf(layout, kind, rank).index]!;
  return out;
}

export function buildParallelState(
  rank: number,
  config: ParallelConfig & { worldSize: number },
  groups: Record<GroupKind, GroupResources>,
  tuning: ShmTuning,
): ParallelState {
  const layout = rankLayout(config);
  const coordinator = (kind: GroupKind): GroupCoordinator => {
    const res = groups[kind];
    const expected = groupOf(layout, kind, rank);
    if (res.index !== expected.index || res.ranks.join() !== expected.ranks.join()) {
      throw new ConfigError(`rank ${rank}: ${kind} group handed over is ${kind}:${res.index} [${res.ranks.join(', ')}], layout says ${kind}:${expected.index}`);
    }
    const name = `${kind}:${res.index}`;
    const comm: Communicator = res.shm ? new ShmCommunicator(res.shm, rank, tuning) : new SoloCommunicator(name);
    const me = res.ranks.indexOf(rank);
    const mq = res.mq ? MessageQueue.attach(res.mq, me === 0 ? 'writer' : me - 1, { timeoutMs: tuning.timeoutMs }) : null;
    return new GroupCoordinator({ rank, ranks: res.ranks, uniqueName: name, cpuGroup: comm, mqBroadcaster: mq });
  };
  return {
    rank,
    worldSize: config.worldSize,
    config,
    world: coordinator('world'),
    tp: coordinator('tp'),
    pp: coordinator('pp'),
    dp: coordinator('dp'),
    ep: coordinator('ep'),
  };
}
