/**
 * Expert-parallel token exchange: every EP rank sends its tokens (with their
 * routing) to the ranks holding their experts and gets back, per token, the
 * weighted sum over all chosen experts. Two methods, same result:
 *
 * - 'allgather' (vLLM's naive / all-gather-v + reduce-scatter-v): exchange
 *   token counts, pad every rank's tokens to the largest count, all-gather
 *   them, run the local experts on every gathered token, reduce-scatter the
 *   partial outputs back, drop the padding.
 * - 'alltoall': each token goes only to the ranks that hold one of its
 *   experts (once per rank, not once per expert); the ranks compute and send
 *   the partial outputs back, which are summed in rank order.
 *
 * Rows travel packed as one fp32 tensor `[hidden | weights | ids]` (ids as
 * floats, exact below 2^24) so each exchange is one collective.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import type { HostRouting } from './router.js';

export type DispatchMethod = 'allgather' | 'alltoall';

/** The local experts' contribution for every row of `x` under `routing` (RoutedExperts.compute). */
export type LocalExperts = (x: tf.Tensor2D, routing: HostRouting) => tf.Tensor2D;

/**
 * Routed output [n, H] for this rank's n tokens. Every rank of `ep` must call it (n may be 0).
 * `owners` (global id → EP rank) is needed by 'alltoall' only.
 */
export async function dispatchToExperts(
  method: DispatchMethod,
  ep: GroupCoordinator,
  x: tf.Tensor2D,
  routing: HostRouting,
  experts: LocalExperts,
  owners: Int32Array,
): Promise<tf.Tensor2D> {
  if (ep.worldSize === 1) return experts(x, routing);
  return method === 'allgather' ? allGatherDispatch(ep, x, routing, experts) : allToAllDispatch(ep, x, routing, experts, owners);
}

async function allGatherDispatch(ep: GroupCoordinator, x: tf.Tensor2D, routing: HostRouting, experts: LocalExperts): Promise<tf.Tensor2D> {
  const [n, H] = x.shape;
  const K = routing.topK;
  const count = tf.tensor1d([n], 'int32');
  const counts = await ep.allGather(count, 0);
  const maxN = Math.max(...(await counts.data()));
  count.dispose();
  counts.dispose();
  // Every rank saw the same counts, so all skip together.
  if (maxN === 0) return tf.zeros([0, H]);

  const padded = packRows(x, routing, maxN);
  const gathered = await ep.allGather(padded, 0);
  padded.dispose();
  const { hidden, routing: all } = await unpackRows(gathered as tf.Tensor2D, H, K);
  gathered.dispose();
  const partial = experts(hidden, all);
  hidden.dispose();
  const mine = await ep.reduceScatter(partial, 0);
  partial.dispose();
  const out = tf.slice(mine, [0, 0], [n, H]) as tf.Tensor2D;
  mine.dispose();
  return out;
}

async function allToAllDispatch(
  ep: GroupCoordinator,
  x: tf.Tensor2D,
  routing: HostRouting,
  experts: LocalExperts,
  owners: Int32Array,
): Promise<tf.Tensor2D> {
  const [n, H] = x.shape;
  const K = routing.topK;
  const W = ep.worldSize;
  // Token rows for each destination rank, in token order.
  const sendRows: number[][] = Array.from({ length: W }, () => []);
  const seen = new Int32Array(W).fill(-1);
  for (let t = 0; t < n; t++) {
    for (let k = 0; k < K; k++) {
      const e = routing.ids[t * K + k]!;
      const r = e >= 0 && e < owners.length ? owners[e]! : -1;
      if (r < 0 || seen[r] === t) continue;
      seen[r] = t;
      sendRows[r]!.push(t);
    }
  }
  const packed = packRows(x, routing, n);
  const chunks = sendRows.map((rows) => takeRows(packed, rows));
  packed.dispose();
  const received = await ep.allToAll(chunks);
  const recvCounts = received.map((c) => c.shape[0]!);
  const incoming = tf.concat(received, 0) as tf.Tensor2D;
  disposeAll(chunks, received);
  const { hidden, routing: theirs } = await unpackRows(incoming, H, K);
  incoming.dispose();
  const partial = experts(hidden, theirs);
  hidden.dispose();
  const replies: tf.Tensor2D[] = [];
  let at = 0;
  for (const c of recvCounts) {
    replies.push(tf.slice(partial, [at, 0], [c, H]));
    at += c;
  }
  partial.dispose();
  const results = await ep.allToAll(replies);

  // Combine: per token, the partial outputs of the ranks it went to, in rank order.
  const slotsOf = new Int32Array(n);
  const rowOf: Int32Array[] = [];
  let rows = 0;
  sendRows.forEach((rs) => {
    for (const t of rs) {
      const s = slotsOf[t]!++;
      if (s === rowOf.length) rowOf.push(new Int32Array(n).fill(-1));
      rowOf[s]![t] = rows++;
    }
  });
  const out = tf.tidy(() => {
    if (rows === 0) return tf.zeros([n, H]) as tf.Tensor2D;
    const stacked = tf.concat([...results, tf.zeros([1, H])], 0);
    let sum: tf.Tensor2D | null = null;
    for (const col of rowOf) {
      for (let t = 0; t < n; t++) if (col[t] === -1) col[t] = rows;
      const part = tf.gather(stacked, tf.tensor1d(col, 'int32')) as tf.Tensor2D;
      sum = sum === null ? part : (tf.add(sum, part) as tf.Tensor2D);
    }
    return sum!;
  });
  disposeAll(replies, results);
  return out;
}

/** [hidden | weights | ids] of `x`'s rows, padded with zero rows (id −1) to `rows`. */
function packRows(x: tf.Tensor2D, routing: HostRouting, rows: number): tf.Tensor2D {
  const [n, H] = x.shape;
  const K = routing.topK;
  const tail = new Float32Array(rows * 2 * K);
  for (let t = 0; t < rows; t++) {
    for (let k = 0; k < K; k++) {
      tail[t * 2 * K + k] = t < n ? routing.weights[t * K + k]! : 0;
      tail[t * 2 * K + K + k] = t < n ? routing.ids[t * K + k]! : -1;
    }
  }
  return tf.tidy(() => {
    const hidden = rows > n ? tf.concat([x, tf.zeros([rows - n, H])], 0) : x;
    return tf.concat([hidden, tf.tensor2d(tail, [rows, 2 * K])], 1) as tf.Tensor2D;
  });
}

async function unpackRows(packed: tf.Tensor2D, H: number, K: number): Promise<{ hidden: tf.Tensor2D; routing: HostRouting }> {
  const rows = packed.shape[0];
  const tailT = tf.slice(packed, [0, H], [rows, 2 * K]);
  const tail = (await tailT.data()) as Float32Array;
  tailT.dispose();
  const ids = new Int32Array(rows * K);
  const weights = new Float32Array(rows * K);
  for (let t = 0; t < rows; t++) {
    for (let k = 0; k < K; k++) {
      weights[t * K + k] = tail[t * 2 * K + k]!;
      ids[t * K + k] = tail[t * 2 * K + K + k]!;
    }
  }
  return { hidden: tf.slice(packed, [0, 0], [rows, H]), routing: { ids, weights, topK: K } };
}

function takeRows(x: tf.Tensor2D, rows: number[]): tf.Tensor2D {
  if (rows.length === 0) return tf.zeros([0, x.shape[1]]);
  return tf.tidy(() => tf.gather(x, tf.tensor1d(rows, 'int32')));
}

function disposeAll(...lists: tf.Tensor[][]): void {
  const seen = new Set<tf.Tensor>();
  for (const l of lists) for (const t of l) if (!seen.has(t)) (seen.add(t), t.dispose());
}
