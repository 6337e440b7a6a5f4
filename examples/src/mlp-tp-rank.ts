/**
 * What each of the 4 ranks of `mlp-tp.ts` runs: Megatron's MLP pair,
 * ColumnParallelLinear (no gather) → GELU → RowParallelLinear (all-reduce).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '@weft/comm';
import { ColumnParallelLinear, hostWeight, RowParallelLinear } from '@weft/layers';
import { denseWeights, HIDDEN, INNER, input } from './mlp-weights.js';

export async function main(ctx: RankContext): Promise<number[]> {
  const tp = ctx.state.tp;
  const w = denseWeights();
  // Each rank loads only its slice of the full weights: rows of fc1, columns of fc2.
  const fc1 = new ColumnParallelLinear({ prefix: 'fc1', inputSize: HIDDEN, outputSize: INNER, bias: true, tp });
  const fc2 = new RowParallelLinear({ prefix: 'fc2', inputSize: INNER, outputSize: HIDDEN, bias: true, tp });
  fc1.weight.load(hostWeight('fc1.weight', w.w1));
  fc1.bias!.load(hostWeight('fc1.bias', w.b1));
  fc2.weight.load(hostWeight('fc2.weight', w.w2));
  fc2.bias!.load(hostWeight('fc2.bias', w.b2));
  const x = input();
  const h = await fc1.forward(x); // [T, INNER / tp] on this rank
  const a = tf.relu(h) as tf.Tensor2D;
  const y = await fc2.forward(a); // all-reduced: [T, HIDDEN] on every rank
  const out = Array.from(await y.data());
  tf.dispose([x, h, a, y]);
  fc1.dispose();
  fc2.dispose();
  return out;
}
