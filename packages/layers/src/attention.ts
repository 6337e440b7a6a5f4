/**
 * Causal scaled-dot-product attention over a flattened batch (vLLM's
 * `Attention` layer, per rank, no collectives). Numerics follow HF's
 * `eager_attention_forward`: `softmax(q·kᵀ · scale + mask)` in fp32, then
 * `· v`. GQA follows `repeat_kv`: query head h reads KV head `⌊h / G⌋`,
 * G = numHeads / numKvHeads.
 *
 * Each sequence is one batched matmul over KV heads. Its queries are grouped as
 * `[Hk, G·q, D]` against keys `[Hk, D, kv]`, so the G query heads sharing a
 * KV head share one matmul and K/V are never repeated in memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, divide } from '@weft/core';
import { validateMetadata, type AttentionMetadata } from './attention-metadata.js';
import { attentionKernel } from './kernels/index.js';
import type { KVCache } from './kv-cache.js';

export interface AttentionOptions {
  /** Query heads on this rank. */
  numHeads: number;
  /** KV heads on this rank (a replicated KV head counts once). */
  numKvHeads: number;
  /** q/k head size. */
  headDim: number;
  /** v head size; defaults to headDim (DeepSeek MLA: v 128 vs qk 192). */
  vHeadDim?: number;
  /** Softmax scale, e.g. `headDim^-0.5` (times the rope's `attentionScaleFactor` for DeepSeek V3). */
  scale: number;
  /**
   * V is the first `vHeadDim` dims of K (MLA's latent cache: K = [latent | k_rope],
   * V = latent). `forward` then takes `v = null` and the cache stores K only.
   */
  valueIsKeyPrefix?: boolean;
  /**
   * Upper bound on score-matrix elements materialised at once. Long prefills
   * are split into query chunks to stay under it. Default 2^24 (64 MiB fp32).
   */
  maxScoreElements?: number;
  /**
   * Most query rows per chunk (default 128). Each chunk reads only the keys
   * its last row can see, which skips most of the causal mask's upper
   * triangle: a 512-token prefill runs ~1.7× faster on wasm than in one block.
   */
  queryChunk?: number;
}

/** Added to masked scores: effectively −∞ after softmax, but finite, because WebGPU shaders may not handle infinities. */
const MASKED = -1e30;

export class Attention {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly valueIsKeyPrefix: boolean;
  readonly scale: number;
  /** Query heads per KV head. */
  readonly groups: number;
  private readonly maxScoreElements: number;
  private readonly queryChunk: number;

  constructor(opts: AttentionOptions) {
    this.numHeads = opts.numHeads;
    this.numKvHeads = opts.numKvHeads;
    this.headDim = opts.headDim;
    this.vHeadDim = opts.vHeadDim ?? opts.headDim;
    this.valueIsKeyPrefix = opts.valueIsKeyPrefix ?? false;
    if (this.valueIsKeyPrefix && this.vHeadDim > this.headDim) {
      throw new ConfigError(`attention: vHeadDim ${this.vHeadDim} cannot be a prefix of keys of size ${this.headDim}`);
    }
    this.scale = opts.scale;
    this.groups = divide(opts.numHeads, opts.numKvHeads, 'num_heads', 'num_kv_heads');
    this.maxScoreElements = opts.maxScoreElements ?? 1 << 24;
    this.queryChunk = opts.queryChunk ?? 128;
    if (!(this.scale > 0)) throw new ConfigError(`attention scale must be positive, got ${this.scale}`);
  }

  /**
   * q `[T, H·D]`, k `[T, Hk·D]`, v `[T, Hk·Dv]` → `[T, H·Dv]`. New K/V go into
   * `cache` per sequence first. Query i of a sequence sees keys
   * `0 .. contextLen + i`. With `cache = null` every contextLen must be 0.
   */
  forward(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D | null, meta: AttentionMetadata, cache: KVCache | null): tf.Tensor2D {
    const T = q.shape[0];
    this.checkInput('q', q, T, this.numHeads * this.headDim);
    this.checkInput('k', k, T, this.numKvHeads * this.headDim);
    if (this.valueIsKeyPrefix !== (v === null)) throw new ConfigError(`attention: v must be ${this.valueIsKeyPrefix ? 'null (it is read from K)' : 'given'}`);
    if (v) this.checkInput('v', v, T, this.numKvHeads * this.vHeadDim);
    validateMetadata(meta, T);
    this.checkCache(meta, cache);
    if (T === 0) return tf.zeros([0, this.numHeads * this.vHeadDim]); // an empty (dummy) step
    return tf.tidy(() => {
      // A lone sequence owns every row: no slices (each is a copy on webgpu).
      const rowsOf = <X extends tf.Tensor2D>(x: X, s: { start: number; queryLen: number }): X =>
        s.start === 0 && s.queryLen === T ? x : (tf.slice(x, [s.start, 0], [s.queryLen, -1]) as X);
      const outs = meta.seqs.map((s) => {
        const kNew = tf.reshape(rowsOf(k, s), [s.queryLen, this.numKvHeads, this.headDim]) as tf.Tensor3D;
        // With V inside K the cache keeps a zero-width V: nothing is stored twice.
        const vNew = (v ? tf.reshape(rowsOf(v, s), [s.queryLen, this.numKvHeads, this.vHeadDim]) : tf.zeros([s.queryLen, this.numKvHeads, 0])) as tf.Tensor3D;
        const [kAll, vAll] = cache ? cache.append(s.seqId, kNew, vNew) : [kNew, vNew];
        const qSeq = rowsOf(q, s);
        return this.attendSequence(qSeq, kAll, vAll, s.contextLen);
      });
      return (outs.length === 1 ? outs[0]! : tf.concat(outs, 0)) as tf.Tensor2D;
    });
  }

  /** One sequence: q `[L, H·D]` against all its keys `[ctx + L, Hk, D]` → `[L, H·Dv]`. */
  private attendSequence(q: tf.Tensor2D, kAll: tf.Tensor3D, vAll: tf.Tensor3D, contextLen: number): tf.Tensor2D {
    const L = q.shape[0];
    const N = kAll.shape[0];
    const fused = attentionKernel(q, kAll, vAll, {
      numHeads: this.numHeads,
      numKvHeads: this.numKvHeads,
      headDim: this.headDim,
      vHeadDim: this.vHeadDim,
      valueIsKeyPrefix: this.valueIsKeyPrefix,
      scale: this.scale,
      firstPos: contextLen,
    });
    if (fused) return fused;
    const kh = tf.transpose(kAll, [1, 0, 2]); // [Hk, N, D]
    const vh = this.valueIsKeyPrefix ? tf.slice(kh, [0, 0, 0], [-1, -1, this.vHeadDim]) : tf.transpose(vAll, [1, 0, 2]); // [Hk, N, Dv]
    const chunk = Math.max(1, Math.min(this.queryChunk, Math.floor(this.maxScoreElements / (this.numHeads * N))));
    const outs: tf.Tensor2D[] = [];
    for (let i0 = 0; i0 < L; i0 += chunk) {
      const i1 = Math.min(L, i0 + chunk);
      // Causality: no query in [i0, i1) sees past key contextLen + i1 − 1.
      const visible = contextLen + i1;
      const qc = i0 === 0 && i1 === L ? q : tf.slice(q, [i0, 0], [i1 - i0, -1]);
      const kc = visible === N ? kh : tf.slice(kh, [0, 0, 0], [-1, visible, -1]);
      const vc = visible === N ? vh : tf.slice(vh, [0, 0, 0], [-1, visible, -1]);
      outs.push(this.attendChunk(qc as tf.Tensor2D, kc, vc, contextLen + i0));
    }
    return (outs.length === 1 ? outs[0]! : tf.concat(outs, 0)) as tf.Tensor2D;
  }

  /** Queries at absolute positions `firstPos ..` against keys `[Hk, n, ·]` (the last query sees all n). */
  private attendChunk(q: tf.Tensor2D, kh: tf.Tensor3D, vh: tf.Tensor3D, firstPos: number): tf.Tensor2D {
    const L = q.shape[0];
    const n = kh.shape[1];
    const { numKvHeads: Hk, groups: G, headDim: D, vHeadDim: Dv } = this;
    // [L, Hk, G, D] → [Hk, G, L, D] → [Hk, G·L, D]: the G heads of one KV head become rows of one matmul.
    const qh = tf.reshape(tf.transpose(tf.reshape(q, [L, Hk, G, D]), [1, 2, 0, 3]), [Hk, G * L, D]);
    let scores: tf.Tensor = tf.mul(tf.matMul(qh, kh, false, true), this.scale); // [Hk, G·L, n]
    if (L > 1) {
      // Query r (position firstPos + r) sees key j iff j ≤ firstPos + r. A single query (decode) sees everything.
      const rows = tf.reshape(tf.range(firstPos, firstPos + L, 1, 'int32'), [L, 1]);
      const cols = tf.reshape(tf.range(0, n, 1, 'int32'), [1, n]);
      const mask = tf.mul(tf.cast(tf.greater(cols, rows), 'float32'), MASKED); // [L, n]
      scores = tf.reshape(tf.add(tf.reshape(scores, [Hk, G, L, n]), mask), [Hk, G * L, n]);
    }
    const probs = tf.softmax(scores) as tf.Tensor3D;
    const out = tf.matMul(probs, vh); // [Hk, G·L, Dv]
    // [Hk, G, L, Dv] → [L, Hk, G, Dv] → [L, H·Dv], head h = kv·G + g as in repeat_kv.
    return tf.reshape(tf.transpose(tf.reshape(out, [Hk, G, L, Dv]), [2, 0, 1, 3]), [L, Hk * G * Dv]);
  }

  private checkInput(name: string, x: tf.Tensor, T: number, width: number): void {
    if (x.rank !== 2 || x.shape[0] !== T || x.shape[1] !== width) {
      throw new ConfigError(`attention: ${name} ${JSON.stringify(x.shape)} must be [${T}, ${width}]`);
    }
  }

  /** Checked before anything is appended, so a bad step leaves the cache as it was. */
  private checkCache(meta: AttentionMetadata, cache: KVCache | null): void {
    if (!cache) {
      const s = meta.seqs.find((x) => x.contextLen !== 0);
      if (s) throw new ConfigError(`attention: sequence ${s.seqId} has contextLen ${s.contextLen} but no KV cache was given`);
      return;
    }
    const d = cache.dims;
    const cachedV = this.valueIsKeyPrefix ? 0 : this.vHeadDim;
    if (d && (d.numKvHeads !== this.numKvHeads || d.headDim !== this.headDim || d.vHeadDim !== cachedV)) {
      throw new ConfigError(
        `attention: cache holds [${d.numKvHeads} heads, k ${d.headDim}, v ${d.vHeadDim}], ` +
          `layer is [${this.numKvHeads} heads, k ${this.headDim}, v ${cachedV}]`,
      );
    }
    for (const s of meta.seqs) {
      const have = cache.length(s.seqId);
      if (have !== s.contextLen) {
        throw new ConfigError(`attention: sequence ${s.seqId} has contextLen ${s.contextLen} but the cache holds ${have} tokens`);
      }
    }
  }
}
