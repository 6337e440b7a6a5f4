import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '../launcher.js';
export async function main(ctx: RankContext) {
  const tp = ctx.state.tp;
  const t = tf.tensor([ctx.rank, 1, 2], [3]);
  const r = await tp.allReduce(t);
  const g = await tp.allGather(t, 0);
  return { r: Array.from(await r.data()), g: Array.from(await g.data()), backend: ctx.backend.name };
}
