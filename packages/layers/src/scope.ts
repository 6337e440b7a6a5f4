import * as tf from '@tensorflow/tfjs-core';

/**
 * `tf.tidy` for async code: every tensor created while `fn` runs is disposed
 * afterwards except those `keep` picks from the result (nothing by default).
 * Safe because a rank runs one forward at a time (tidy cannot span an await).
 */
export async function scoped<T>(fn: () => Promise<T>, keep?: (result: T) => tf.TensorContainer): Promise<T> {
  const engine = tf.engine();
  engine.startScope();
  let kept: tf.TensorContainer | undefined;
  try {
    const result = await fn();
    kept = keep?.(result);
    return result;
  } finally {
    engine.endScope(kept);
  }
}
