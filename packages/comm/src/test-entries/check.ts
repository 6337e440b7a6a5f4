/** Helpers for rank entries in tests: deterministic data every rank can recompute, and loud comparisons. */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Small integers: float32 sums of them are exact in any order, so results
 * compare exactly. `salt` separates cases.
 */
export function values(rank: number, n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => ((rank * 7919 + i * 31 + salt * 17) % 97) - 48);
}

export function input(rank: number, shape: number[], dtype: 'float32' | 'int32', salt: number): tf.Tensor {
  return tf.tensor(values(rank, shape.reduce((a, b) => a * b, 1), salt), shape, dtype);
}

export async function expectEqual(what: string, got: tf.Tensor | null, want: tf.Tensor): Promise<void> {
  if (got === null) throw new Error(`${what}: got null, want shape [${want.shape.join(', ')}]`);
  if (got.dtype !== want.dtype) throw new Error(`${what}: dtype ${got.dtype}, want ${want.dtype}`);
  if (got.shape.join() !== want.shape.join()) throw new Error(`${what}: shape [${got.shape.join(', ')}], want [${want.shape.join(', ')}]`);
  const a = await got.data();
  const b = await want.data();
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) throw new Error(`${what}: element ${i} is ${a[i]}, want ${b[i]}`);
  }
}

export function expectArrayEqual(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, want ${want.length}`);
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) throw new Error(`${what}: element ${i} is ${got[i]}, want ${want[i]}`);
}

export function assert(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}
