/** Ranks that misbehave on purpose; args.mode says how and args.bad which rank. */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '../launcher.js';

export interface FaultArgs {
  mode: 'throw' | 'skip' | 'exit' | 'mismatch' | 'send-timeout' | 'recv-timeout' | 'unclonable';
  bad: number;
}

export async function main(ctx: RankContext): Promise<unknown> {
  const { mode, bad } = ctx.args as FaultArgs;
  const g = ctx.state.tp;
  const x = tf.tensor([1, 2, 3]);
  const isBad = ctx.rank === bad;
  switch (mode) {
    case 'throw':
      if (isBad) throw new Error('deliberate failure before the collective');
      break;
    case 'skip':
      if (isBad) return 'skipped the collective';
      break;
    case 'exit':
      if (isBad) process.exit(3);
      break;
    case 'mismatch':
      if (isBad) await g.allGather(x);
      else await g.allReduce(x);
      return 'unreachable';
    case 'send-timeout':
      // the receiver never receives: a message larger than the ring blocks the sender
      if (isBad) return 'not receiving';
      await g.send(tf.zeros([100_000]), 1);
      return 'sent';
    case 'recv-timeout':
      if (isBad) return 'not sending';
      await g.recv(1);
      return 'received';
    case 'unclonable':
      return isBad ? () => 1 : 'fine';
  }
  await g.allReduce(x);
  return 'done';
}
