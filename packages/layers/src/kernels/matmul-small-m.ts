/**
 * `x [M, K] · w [K, N] (+ bias [N])` for small M (decode: one row per
 * sequence), weights as weft stores them (`[in, out]`, Parameter.storeTransposed).
 *
 * tfjs's tiled matmul wastes most of each tile when M is 1..16. Here a
 * workgroup owns `LANES` vec4 columns and splits K over `SLICES` threads per
 * column: each thread streams its rows of `w` (neighbouring lanes read
 * neighbouring 16 bytes, so a row's tile is one coalesced read), keeps M
 * vec4 sums, and the slices are summed in workgroup memory.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { WORKGROUP_INDEX, registerOnce, runProgram, type WeftProgram } from './program.js';

export const MATMUL_SMALL_M = 'WeftMatMulSmallM';
/** Largest M this kernel takes; above it tfjs's tiled matmul is the better program. */
export const SMALL_M_MAX = 16;
/** vec4 columns per workgroup × K slices per column (LANES · SLICES threads); see `setSmallMTiling`. */
let LANES = 4;
let SLICES = 64;

/** Change the tiling (benchmarks sweep it); both powers of two, LANES · SLICES ≤ 256. */
export function setSmallMTiling(lanes: number, slices: number): void {
  const pow2 = (x: number) => Number.isInteger(Math.log2(x));
  if (!pow2(lanes) || !pow2(slices) || lanes * slices > 256) throw new Error(`small-M tiling ${lanes}×${slices}: powers of two with a product ≤ 256`);
  LANES = lanes;
  SLICES = slices;
}

class MatMulSmallMProgram implements WeftProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent = 4;
  workgroupSize: [number, number, number];
  private readonly lanes: number;
  private readonly slices: number;
  uniforms = 'k : i32, n4 : i32, groups : i32,';

  constructor(
    readonly m: number,
    readonly n: number,
    readonly hasBias: boolean,
  ) {
    this.outputShape = [m, n];
    this.variableNames = hasBias ? ['x', 'w', 'bias'] : ['x', 'w'];
    this.variableComponents = hasBias ? [1, 4, 4] : [1, 4];
    this.shaderKey = `weftMatMulSmallM_${m}_${hasBias}_${LANES}x${SLICES}`;
    this.workgroupSize = [LANES * SLICES, 1, 1];
    this.lanes = LANES;
    this.slices = SLICES;
    this.dispatch = [Math.ceil(n / 4 / LANES), 1, 1];
  }

  getUserCode(): string {
    const M = this.m;
    const accs = Array.from({ length: M }, (_, i) => `acc${i}`);
    return `
  var<workgroup> part : array<vec4<f32>, ${this.lanes * this.slices}>;
  fn main(flatIndex : i32) {
    let lid = i32(localIndex);
    let lane = lid % ${this.lanes};
    let slice = lid / ${this.lanes};
    let group = ${WORKGROUP_INDEX};
    let col = group * ${this.lanes} + lane;
    let K = uniforms.k;
    let N4 = uniforms.n4;
    let valid = col < N4 && group < uniforms.groups;
    ${accs.map((a) => `var ${a} = vec4<f32>(0.0);`).join('\n    ')}
    if (valid) {
      for (var k = slice; k < K; k = k + ${this.slices}) {
        let wv = w[k * N4 + col];
        ${accs.map((a, i) => `${a} = ${a} + x[${i} * K + k] * wv;`).join('\n        ')}
      }
    }
    ${accs
      .map(
        (a, i) => `part[lid] = ${a};
    workgroupBarrier();
    ${sliceReduce(this.lanes, this.slices)}
    if (slice == 0 && valid) { result[${i} * N4 + col] = part[lid]${this.hasBias ? ' + bias[col]' : ''}; }
    workgroupBarrier();`,
      )
      .join('\n    ')}
  }`;
  }
}

/** Sums the SLICES partials of each lane (local index = slice · LANES + lane) into slice 0. */
function sliceReduce(lanes: number, slices: number): string {
  const lines: string[] = [];
  for (let s = slices / 2; s >= 1; s /= 2) lines.push(`if (slice < ${s}) { part[lid] = part[lid] + part[lid + ${s * lanes}]; }`, 'workgroupBarrier();');
  return lines.join('\n    ');
}

export const registerMatMulSmallM = () =>
  registerOnce(MATMUL_SMALL_M, ({ inputs, backend }) => {
  const { x, w, bias } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; bias?: tf.TensorInfo };
  const [m, k] = x.shape as [number, number];
  const n = w.shape[1]!;
  const program = new MatMulSmallMProgram(m, n, bias !== undefined);
  const groups = program.dispatch[0];
  return runProgram(backend, program, bias ? [x, w, bias] : [x, w], [
      { type: 'int32', data: [k] },
      { type: 'int32', data: [n / 4] },
      { type: 'int32', data: [groups] },
    ]);
});
