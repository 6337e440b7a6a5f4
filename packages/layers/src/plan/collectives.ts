/**
 * A plan boundary's collective on host arrays, through the rank's
 * `GroupCoordinator` (threads or TCP): executors read the boundary's
 * activation back to the host, call these, and write the result back.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';

/** `x [rows, width]` ← Σ over the group, in place. */
export async function allReduceHost(group: GroupCoordinator, x: Float32Array, rows: number, width: number): Promise<void> {
  if (group.worldSize === 1) return;
  const t = tf.tensor2d(x, [rows, width]);
  try {
    const r = await group.allReduce(t);
    x.set((await r.data()) as Float32Array);
    r.dispose();
  } finally {
    t.dispose();
  }
}

/** Rank 0 of the group: every rank's `[rows, width]` side by side, `[rows, width · worldSize]`; others: null. */
export async function gatherColumnsHost(group: GroupCoordinator, x: Float32Array, rows: number, width: number): Promise<Float32Array | null> {
  if (group.worldSize === 1) return x;
  const t = tf.tensor2d(x, [rows, width]);
  try {
    const r = await group.gather(t, 0, -1);
    if (!r) return null;
    const out = (await r.data()) as Float32Array;
    r.dispose();
    return out;
  } finally {
    t.dispose();
  }
}
