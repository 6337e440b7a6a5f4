import type * as tf from '@tensorflow/tfjs-core';
import { defaultWeightLoader } from '../parameter.js';
import { LinearBase, type LinearOptions } from './linear-base.js';

/** Every rank holds the whole weight (vLLM `ReplicatedLinear`). */
export class ReplicatedLinear extends LinearBase {
  constructor(opts: LinearOptions) {
    super(opts.prefix, opts.inputSize, opts.outputSize, opts.bias ?? false, defaultWeightLoader, defaultWeightLoader);
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return this.matmul(x);
  }
}
