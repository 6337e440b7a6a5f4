/** A rank's ParallelState over the TCP transport: one TcpCommunicator per group, each on its own channel. */
import { groupOf, rankLayout, type GroupKind, type ParallelConfig } from '@weft/core';
import { SoloCommunicator } from '../communicator.js';
import { GroupCoordinator } from '../group-coordinator.js';
import { GROUP_KINDS, type ParallelState } from '../parallel-state.js';
import { Channel } from '../tcp/channels.js';
import { TcpCommunicator } from '../tcp/tcp-communicator.js';
import type { TcpTransport } from '../tcp/transport.js';

export function buildTcpParallelState(t: TcpTransport, config: ParallelConfig & { worldSize: number }, localRank?: number): ParallelState {
  const layout = rankLayout(config);
  const rank = t.rank;
  const coordinator = (kind: GroupKind): GroupCoordinator => {
    const { index, ranks } = groupOf(layout, kind, rank);
    const name = `${kind}:${index}`;
    const channel = Channel.groupBase + GROUP_KINDS.indexOf(kind) * 4096 + index;
    const comm = ranks.length > 1 ? new TcpCommunicator(t, name, ranks, channel) : new SoloCommunicator(name);
    // No shared-memory queue between processes: broadcastObject goes over the CPU group (the socket).
    return new GroupCoordinator({ rank, ranks, uniqueName: name, localRank, cpuGroup: comm, mqBroadcaster: null });
  };
  return { rank, worldSize: config.worldSize, config, world: coordinator('world'), tp: coordinator('tp'), pp: coordinator('pp'), dp: coordinator('dp'), ep: coordinator('ep') };
}
