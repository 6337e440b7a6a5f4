/**
 * Rotary embedding in one dispatch, read straight out of a fused projection:
 * `src [T, W]`, columns `[colStart, colStart + heads·D)` as `[T, heads, D]`,
 * rotated by the cos/sin rows `positions [T]` pick from `[P, rotaryDim/2]`
 * tables; dims past rotaryDim pass through. Neox style rotates halves (HF
 * `rotate_half`), GPT-J style rotates interleaved pairs (DeepSeek's complex
 * product). Replaces two gathers and the slices, products and concats.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { WORKGROUP_INDEX, registerOnce, runProgram, type WeftProgram } from './program.js';

export const ROTARY = 'WeftRotary';
const THREADS = 256;

export interface RotaryAttrs {
  colStart: number;
  heads: number;
  headDim: number;
  rotaryDim: number;
  isNeoxStyle: boolean;
}

class RotaryProgram implements WeftProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ['src', 'positions', 'cosTable', 'sinTable'];
  workgroupSize: [number, number, number] = [THREADS, 1, 1];
  uniforms = 'total : i32, width : i32, colStart : i32, headDim : i32, rotaryDim : i32, outWidth : i32,';

  constructor(
    t: number,
    a: RotaryAttrs,
  ) {
    this.outputShape = [t, a.heads * a.headDim];
    this.dispatch = [Math.ceil((t * a.heads * a.headDim) / THREADS), 1, 1];
    this.shaderKey = `weftRotary_${a.isNeoxStyle}`;
    this.neox = a.isNeoxStyle;
  }

  private readonly neox: boolean;

  getUserCode(): string {
    const partner = this.neox
      ? `let half = R / 2;
        var i = d;
        var other = 0.0;
        var sign = -1.0;
        if (d < half) { other = src[base + d + half]; } else { i = d - half; other = src[base + d - half]; sign = 1.0; }`
      : `let i = d / 2;
        var other = 0.0;
        var sign = -1.0;
        if (d % 2 == 0) { other = src[base + d + 1]; } else { other = src[base + d - 1]; sign = 1.0; }`;
    return `
  fn main(flatIndex : i32) {
    let idx = ${WORKGROUP_INDEX} * ${THREADS} + i32(localIndex);
    if (idx < uniforms.total) {
      let D = uniforms.headDim;
      let R = uniforms.rotaryDim;
      let t = idx / uniforms.outWidth;
      let c = idx - t * uniforms.outWidth;
      let d = c % D;
      let base = t * uniforms.width + uniforms.colStart + c - d;
      let xv = src[base + d];
      if (d >= R) {
        result[idx] = xv;
      } else {
        ${partner}
        let row = positions[t] * (R / 2) + i;
        let cs = cosTable[row];
        let sn = sinTable[row];
        if (sign < 0.0) { result[idx] = xv * cs - other * sn; } else { result[idx] = xv * cs + other * sn; }
      }
    }
  }`;
  }
}

export const registerRotary = () =>
  registerOnce(ROTARY, ({ inputs, backend, attrs }) => {
    const { src, positions, cosTable, sinTable } = inputs as Record<'src' | 'positions' | 'cosTable' | 'sinTable', tf.TensorInfo>;
    const a = attrs as unknown as RotaryAttrs;
    const [t, width] = src.shape as [number, number];
    const outWidth = a.heads * a.headDim;
    return runProgram(backend, new RotaryProgram(t, a), [src, positions, cosTable, sinTable], [
      { type: 'int32', data: [t * outWidth] },
      { type: 'int32', data: [width] },
      { type: 'int32', data: [a.colStart] },
      { type: 'int32', data: [a.headDim] },
      { type: 'int32', data: [a.rotaryDim] },
      { type: 'int32', data: [outWidth] },
    ]);
  });
