/** A rank that computes on whatever backend it was given until the driver closes the pool. */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '../launcher.js';

export async function main(ctx: RankContext): Promise<number> {
  for (;;) {
    const m = await ctx.driver.recv();
    if (m === undefined) return ctx.rank;
    ctx.driver.send(tf.tidy(() => tf.sum(tf.matMul(tf.ones([64, 64]), tf.ones([64, 64]))).dataSync()[0]));
  }
}
