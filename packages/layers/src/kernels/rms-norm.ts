/**
 * RMSNorm in one dispatch: one workgroup per row sums x², then writes
 * `weight * (x * inverseSqrt(mean + eps))` (HF's order). Replaces six tfjs ops.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { WORKGROUP_INDEX, registerOnce, runProgram, treeReduce, type WeftProgram } from './program.js';

export const RMS_NORM = 'WeftRMSNorm';
const THREADS = 256;

class RMSNormProgram implements WeftProgram {
  outputShape: number[];
  shaderKey = 'weftRMSNorm';
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ['x', 'weight'];
  workgroupSize: [number, number, number] = [THREADS, 1, 1];
  uniforms = 'rows : i32, h : i32, eps : f32,';

  constructor(rows: number, h: number) {
    this.outputShape = [rows, h];
    this.dispatch = [rows, 1, 1];
  }

  getUserCode(): string {
    return `
  var<workgroup> red : array<f32, ${THREADS}>;
  fn main(flatIndex : i32) {
    let lid = i32(localIndex);
    let row = ${WORKGROUP_INDEX};
    let H = uniforms.h;
    let valid = row < uniforms.rows;
    var s = 0.0;
    if (valid) {
      for (var i = lid; i < H; i = i + ${THREADS}) { let v = x[row * H + i]; s = s + v * v; }
    }
    red[lid] = s;
    workgroupBarrier();
    ${treeReduce('red', THREADS, '+')}
    let inv = inverseSqrt(red[0] / f32(H) + uniforms.eps);
    if (valid) {
      for (var i = lid; i < H; i = i + ${THREADS}) { result[row * H + i] = weight[i] * (x[row * H + i] * inv); }
    }
  }`;
  }
}

export const registerRMSNorm = () =>
  registerOnce(RMS_NORM, ({ inputs, backend, attrs }) => {
    const { x, weight } = inputs as { x: tf.TensorInfo; weight: tf.TensorInfo };
    const [rows, h] = x.shape as [number, number];
    const eps = (attrs as { eps: number }).eps;
    return runProgram(backend, new RMSNormProgram(rows, h), [x, weight], [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [h] },
      { type: 'float32', data: [eps] },
    ]);
  });
