/**
 * vLLM's `SiluAndMul` in one dispatch: `gateUp [T, 2I] → silu(gate) · up
 * [T, I]`, with silu(g) = g · 1/(1 + exp(−g)) as tfjs computes sigmoid.
 * Replaces split, sigmoid and two products.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { WORKGROUP_INDEX, registerOnce, runProgram, type WeftProgram } from './program.js';

export const SILU_MUL = 'WeftSiluAndMul';
const THREADS = 256;

class SiluMulProgram implements WeftProgram {
  outputShape: number[];
  shaderKey = 'weftSiluAndMul';
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ['gateUp'];
  workgroupSize: [number, number, number] = [THREADS, 1, 1];
  uniforms = 'total : i32, inter : i32,';

  constructor(t: number, inter: number) {
    this.outputShape = [t, inter];
    this.dispatch = [Math.ceil((t * inter) / THREADS), 1, 1];
  }

  getUserCode(): string {
    return `
  fn main(flatIndex : i32) {
    let idx = ${WORKGROUP_INDEX} * ${THREADS} + i32(localIndex);
    if (idx < uniforms.total) {
      let I = uniforms.inter;
      let t = idx / I;
      let i = idx - t * I;
      let g = gateUp[t * 2 * I + i];
      let u = gateUp[t * 2 * I + I + i];
      result[idx] = (g * (1.0 / (1.0 + exp(-1.0 * g)))) * u;
    }
  }`;
  }
}

export const registerSiluMul = () =>
  registerOnce(SILU_MUL, ({ inputs, backend }) => {
    const { gateUp } = inputs as { gateUp: tf.TensorInfo };
    const [t, twoI] = gateUp.shape as [number, number];
    const inter = twoI / 2;
    return runProgram(backend, new SiluMulProgram(t, inter), [gateUp], [
      { type: 'int32', data: [t * inter] },
      { type: 'int32', data: [inter] },
    ]);
  });
