/**
 * Causal attention of one sequence in one dispatch (decode and prefill):
 * `q [L, H·D]` against its cached keys `k [N, Hk·D]` and values
 * `v [N, Hk·Dv]` (or V = the first Dv dims of each key: MLA's latent cache)
 * → `[L, H·Dv]`. Query row r sits at position `firstPos + r` and sees keys
 * `0 ..= firstPos + r`; head h reads KV head ⌊h / G⌋ (HF `repeat_kv`).
 *
 * One workgroup per (row, head) walks the keys in tiles of THREADS with an
 * online softmax (running max and sum, flash-decoding style): a thread scores
 * one key of the tile, the tile's probabilities go through workgroup memory,
 * and each thread accumulates its own output dims. Replaces the transposes,
 * two batched matmuls, the mask and the softmax of the composite path.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { WORKGROUP_INDEX, registerOnce, runProgram, treeReduce, type WeftProgram } from './program.js';

export const ATTENTION = 'WeftAttention';
const THREADS = 64;
/** Added to masked scores, as the composite path does. */
const MASKED = -1e30;

export interface AttentionAttrs {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vHeadDim: number;
  /** V is the first vHeadDim dims of K (`v` is then K itself). */
  valueIsKeyPrefix: boolean;
  scale: number;
  firstPos: number;
}

class AttentionProgram implements WeftProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ['q', 'k', 'v'];
  workgroupSize: [number, number, number] = [THREADS, 1, 1];
  uniforms = 'rows : i32, heads : i32, groups : i32, n : i32, headDim : i32, kStride : i32, vStride : i32, vHeadStride : i32, vHeadDim : i32, firstPos : i32, scale : f32,';
  private readonly dimsPerThread: number;

  constructor(l: number, a: AttentionAttrs) {
    this.outputShape = [l, a.numHeads * a.vHeadDim];
    this.dispatch = [l * a.numHeads, 1, 1];
    this.dimsPerThread = Math.ceil(a.vHeadDim / THREADS);
    this.shaderKey = `weftAttention_${this.dimsPerThread}`;
  }

  getUserCode(): string {
    const U = this.dimsPerThread;
    const us = Array.from({ length: U }, (_, u) => u);
    return `
  var<workgroup> red : array<f32, ${THREADS}>;
  var<workgroup> p : array<f32, ${THREADS}>;
  fn main(flatIndex : i32) {
    let lid = i32(localIndex);
    let item = ${WORKGROUP_INDEX};
    let valid = item < uniforms.rows * uniforms.heads;
    let r = item / uniforms.heads;
    let h = item - r * uniforms.heads;
    let hk = h / uniforms.groups;
    let D = uniforms.headDim;
    let Dv = uniforms.vHeadDim;
    let N = uniforms.n;
    let visible = min(N, uniforms.firstPos + r + 1);
    let qBase = (r * uniforms.heads + h) * D;
    var m = ${MASKED};
    var l = 0.0;
    ${us.map((u) => `var acc${u} = 0.0;`).join('\n    ')}
    for (var c = 0; c < N; c = c + ${THREADS}) {
      let j = c + lid;
      let seen = valid && j < visible;
      var s = ${MASKED};
      if (seen) {
        let kBase = j * uniforms.kStride + hk * D;
        var dot = 0.0;
        for (var d = 0; d < D; d = d + 1) { dot = dot + q[qBase + d] * k[kBase + d]; }
        s = dot * uniforms.scale;
      }
      red[lid] = s;
      workgroupBarrier();
      ${treeReduce('red', THREADS, 'max')}
      let mNew = max(m, red[0]);
      var e = 0.0;
      if (seen) { e = exp(s - mNew); }
      p[lid] = e;
      workgroupBarrier();
      let alpha = exp(m - mNew);
      let tile = min(${THREADS}, N - c);
      var sum = 0.0;
      for (var t = 0; t < tile; t = t + 1) { sum = sum + p[t]; }
      l = l * alpha + sum;
      ${us
        .map(
          (u) => `{
        let dv = lid + ${u * THREADS};
        var a = acc${u} * alpha;
        if (valid && dv < Dv) {
          for (var t = 0; t < tile; t = t + 1) { a = a + p[t] * v[(c + t) * uniforms.vStride + hk * uniforms.vHeadStride + dv]; }
        }
        acc${u} = a;
      }`,
        )
        .join('\n      ')}
      m = mNew;
      workgroupBarrier();
    }
    if (valid) {
      ${us.map((u) => `if (lid + ${u * THREADS} < Dv) { result[(r * uniforms.heads + h) * Dv + lid + ${u * THREADS}] = acc${u} / l; }`).join('\n      ')}
    }
  }`;
  }
}

export const registerAttention = () =>
  registerOnce(ATTENTION, ({ inputs, backend, attrs }) => {
    const { q, k, v } = inputs as Record<'q' | 'k' | 'v', tf.TensorInfo>;
    const a = attrs as unknown as AttentionAttrs;
    const l = q.shape[0]!;
    const n = k.shape[0]!;
    const kStride = a.numKvHeads * a.headDim;
    const vStride = a.valueIsKeyPrefix ? kStride : a.numKvHeads * a.vHeadDim;
    const vHeadStride = a.valueIsKeyPrefix ? a.headDim : a.vHeadDim;
    const i32 = (x: number) => ({ type: 'int32' as const, data: [x] });
    return runProgram(backend, new AttentionProgram(l, a), [q, k, v], [
      i32(l),
      i32(a.numHeads),
      i32(a.numHeads / a.numKvHeads),
      i32(n),
      i32(a.headDim),
      i32(kStride),
      i32(vStride),
      i32(vHeadStride),
      i32(a.vHeadDim),
      i32(a.firstPos),
      { type: 'float32', data: [a.scale] },
    ]);
  });
