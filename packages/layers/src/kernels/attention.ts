/**
 * Causal attention of one sequence in one dispatch (decode and prefill):
 * `q [L, H·D]` against its cached keys `k [N, Hk·D]` and values
 * `v [N, Hk·Dv]` (or V = the first Dv dims of each key: MLA's latent cache)
 * → `[L, H·Dv]`. Query row r sits at position `firstPos + r` and sees keys
 * `0 ..= firstPos + r`, only the last `slidingWindow` of them when that is
 * set (positions are relative to the first key given, so a caller that read
 * only the window passes `firstPos` relative to it); scores are soft-capped
 * (`cap · tanh(s / cap)`) when `softCap` is set; head h reads KV head ⌊h / G⌋
 * (HF `repeat_kv`).
 *
 * One workgroup per (row, head). Its SPLITS groups of THREADS walk
 * interleaved key tiles with an online softmax (running max and sum,
 * flash-decoding style): a thread scores one key of the tile, the tile's
 * probabilities go through workgroup memory, each thread accumulates its own
 * output dims, and the splits are merged at the end. Splitting the keys keeps
 * four times as many threads busy at decode, where there are only H rows. Replaces the transposes,
 * two batched matmuls, the mask and the softmax of the composite path.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { WORKGROUP_INDEX, registerOnce, runProgram, type WeftProgram } from './program.js';

export const ATTENTION = 'WeftAttention';
/** Threads per key split; a workgroup runs SPLITS of them over interleaved key tiles. */
const THREADS = 64;
const SPLITS = 4;
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
  /** Keys a query sees, itself included; 0: all before it. */
  slidingWindow: number;
  /** Attention-logit soft-cap; 0: none. */
  softCap: number;
}

class AttentionProgram implements WeftProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ['q', 'k', 'v'];
  workgroupSize: [number, number, number] = [THREADS * SPLITS, 1, 1];
  uniforms = 'rows : i32, heads : i32, groups : i32, n : i32, headDim : i32, kStride : i32, vStride : i32, vHeadStride : i32, vHeadDim : i32, firstPos : i32, window : i32, scale : f32, softCap : f32,';
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
    const W = THREADS * SPLITS;
    const splitMax: string[] = [];
    for (let s = THREADS / 2; s >= 1; s /= 2) splitMax.push(`if (tl < ${s}) { red[lid] = max(red[lid], red[lid + ${s}]); }`, 'workgroupBarrier();');
    return `
  var<workgroup> red : array<f32, ${W}>;
  var<workgroup> p : array<f32, ${W}>;
  var<workgroup> splitM : array<f32, ${SPLITS}>;
  var<workgroup> splitL : array<f32, ${SPLITS}>;
  var<workgroup> splitAcc : array<f32, ${SPLITS * U * THREADS}>;
  fn main(flatIndex : i32) {
    let lid = i32(localIndex);
    let split = lid / ${THREADS};
    let tl = lid - split * ${THREADS};
    let base = split * ${THREADS};
    let item = ${WORKGROUP_INDEX};
    let valid = item < uniforms.rows * uniforms.heads;
    let r = item / uniforms.heads;
    let h = item - r * uniforms.heads;
    let hk = h / uniforms.groups;
    let D = uniforms.headDim;
    let Dv = uniforms.vHeadDim;
    let N = uniforms.n;
    let visible = min(N, uniforms.firstPos + r + 1);
    var lowest = 0;
    if (uniforms.window > 0) { lowest = uniforms.firstPos + r - uniforms.window + 1; }
    let qBase = (r * uniforms.heads + h) * D;
    var m = ${MASKED};
    var l = 0.0;
    ${us.map((u) => `var acc${u} = 0.0;`).join('\n    ')}
    for (var c0 = 0; c0 < N; c0 = c0 + ${W}) {
      // This split's tile of keys: [c, c + tile).
      let c = c0 + base;
      let tile = clamp(N - c, 0, ${THREADS});
      let j = c + tl;
      let seen = valid && j < visible && j >= lowest;
      var s = ${MASKED};
      if (seen) {
        let kBase = j * uniforms.kStride + hk * D;
        var dot = 0.0;
        for (var d = 0; d < D; d = d + 1) { dot = dot + q[qBase + d] * k[kBase + d]; }
        s = dot * uniforms.scale;
        // tanh of a clamped argument: WGSL's tanh may overflow to NaN for large ones.
        if (uniforms.softCap > 0.0) { s = uniforms.softCap * tanh(clamp(s / uniforms.softCap, -15.0, 15.0)); }
      }
      red[lid] = s;
      workgroupBarrier();
      ${splitMax.join('\n      ')}
      let mNew = max(m, red[base]);
      var e = 0.0;
      if (seen) { e = exp(s - mNew); }
      p[lid] = e;
      workgroupBarrier();
      let alpha = exp(m - mNew);
      var sum = 0.0;
      for (var t = 0; t < tile; t = t + 1) { sum = sum + p[base + t]; }
      l = l * alpha + sum;
      ${us
        .map(
          (u) => `{
        let dv = tl + ${u * THREADS};
        var a = acc${u} * alpha;
        if (valid && dv < Dv) {
          for (var t = 0; t < tile; t = t + 1) { a = a + p[base + t] * v[(c + t) * uniforms.vStride + hk * uniforms.vHeadStride + dv]; }
        }
        acc${u} = a;
      }`,
        )
        .join('\n      ')}
      m = mNew;
      workgroupBarrier();
    }
    // Merge the splits: rescale each to the common max.
    if (tl == 0) { splitM[split] = m; splitL[split] = l; }
    ${us.map((u) => `splitAcc[(split * ${U} + ${u}) * ${THREADS} + tl] = acc${u};`).join('\n    ')}
    workgroupBarrier();
    if (valid && split == 0) {
      var mAll = ${MASKED};
      for (var i = 0; i < ${SPLITS}; i = i + 1) { mAll = max(mAll, splitM[i]); }
      var lAll = 0.0;
      for (var i = 0; i < ${SPLITS}; i = i + 1) { lAll = lAll + splitL[i] * exp(splitM[i] - mAll); }
      ${us
        .map(
          (u) => `if (tl + ${u * THREADS} < Dv) {
        var o = 0.0;
        for (var i = 0; i < ${SPLITS}; i = i + 1) { o = o + splitAcc[(i * ${U} + ${u}) * ${THREADS} + tl] * exp(splitM[i] - mAll); }
        result[(r * uniforms.heads + h) * Dv + tl + ${u * THREADS}] = o / lAll;
      }`,
        )
        .join('\n      ')}
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
      i32(a.slidingWindow),
      { type: 'float32', data: [a.scale] },
      { type: 'float32', data: [a.softCap] },
    ]);
  });
