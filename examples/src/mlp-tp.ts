/**
 * Example: a two-layer MLP split over 4 worker threads (tensor parallel),
 * checked against the same MLP computed densely on the main thread.
 *
 *   node examples/dist/mlp-tp.js
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@weft/core';
import { runRanks } from '@weft/comm';
import { denseWeights, input } from './mlp-weights.js';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const outputs = (await runRanks({ parallel: { tp: 4 }, entry: new URL(`./mlp-tp-rank${ext}`, import.meta.url), backend: 'wasm' })) as number[][];

await initBackend({ prefer: 'wasm' });
const w = denseWeights();
const t = (h: { shape: number[]; data: Float32Array | Int32Array }) => tf.tensor(h.data, h.shape);
const x = input();
const dense = tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, t(w.w1), false, true), t(w.b1))), t(w.w2), false, true), t(w.b2));
const want = await dense.data();
const err = Math.max(...outputs.map((o) => Math.max(...o.map((v, i) => Math.abs(v - want[i]!)))));
console.log(`4 ranks, output [${dense.shape.join(', ')}], max |sharded − dense| over all ranks = ${err.toExponential(2)}`);
if (!(err < 1e-5)) {
  console.error('MISMATCH');
  process.exit(1);
}
console.log('sharded MLP equals the dense MLP');
