/**
 * Causal scaled-dot-product attention over a flattened batch (vLLM's
 * `Attention` layer, per rank, no collectives). Numerics follow HF's
 * `eager_attention_forward`: `softmax(q·kᵀ · scale + mask)` in fp32, then
 * `· v`. GQA follows `repeat_kv`: query head h reads KV head `⌊h / G⌋`,
 * G = numHeads / numKvHeads.
 *
 * K/V live in a paged cache (`PagedKVCache`, one per layer per rank): the
 * step's new rows are written into their slots, then each sequence reads its
 * context back through its block table. Decodes of all sequences run as one
 * batched matmul (contexts padded to the longest, masked); prefills and
 * chunked prefills run one sequence at a time, in query chunks when long.
 * Queries are grouped as `[Hk, G·q, D]` against keys `[Hk, D, kv]`, so the G
 * query heads sharing a KV head share one matmul and K/V are never repeated
 * in memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, divide } from '@weft/core';
import { slotMapping, validateBlockTables, validateMetadata, type AttentionMetadata, type SeqMetadata } from './attention-metadata.js';
import { attentionKernel, webgpuKernelsActive } from './kernels/index.js';
import type { KVCacheSpec, PagedKVCache } from './paged-kv-cache.js';
import type { PlanBuilder } from './plan/builder.js';
import type { ActView } from './plan/ops.js';

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
  /**
   * Sliding-window attention (Mistral, Qwen2, Gemma 2's local layers): a
   * query at position p sees keys at positions `p − slidingWindow < j ≤ p`,
   * i.e. the last `slidingWindow` tokens, itself included (HF's
   * `sliding_window_overlay`: `kv_idx > q_idx − sliding_window`; vLLM's
   * FlashAttention `window_size = (sliding_window − 1, 0)`). Null or absent:
   * global attention. Only the window is read from the cache, so blocks
   * wholly before it may be freed (block-table entries of −1).
   */
  slidingWindow?: number | null;
  /**
   * Attention-logit soft-capping (Gemma 2's `attn_logit_softcapping`):
   * scores = cap · tanh(scores / cap), after the scale, before the mask and
   * softmax. Null or absent: none.
   */
  logitsSoftCap?: number | null;
}

/** Added to masked scores: effectively −∞ after softmax, but finite, because WebGPU shaders may not handle infinities. */
const MASKED = -1e30;

/**
 * Host staging buffers for contexts gathered from the cache, reused from step
 * to step: a fresh buffer of a long batch's context per layer costs more in
 * page faults than the copy itself. Only where making a tensor copies the
 * array (wasm at once, tensorflow at the tensor's first use, which comes in
 * the same synchronous call here); cpu and webgpu keep the array itself, so
 * they get a fresh one.
 */
const staging: Float32Array[] = [];
function stagingBuffer(slot: number, n: number): Float32Array {
  const backend = tf.getBackend();
  if (backend !== 'wasm' && backend !== 'tensorflow') return new Float32Array(n);
  let buf = staging[slot];
  if (!buf || buf.length < n) staging[slot] = buf = new Float32Array(Math.max(n, Math.ceil((buf?.length ?? 0) * 1.5)));
  return buf.subarray(0, n);
}

export class Attention {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly valueIsKeyPrefix: boolean;
  readonly scale: number;
  /** Query heads per KV head. */
  readonly groups: number;
  /** Keys a query sees, itself included; null: all before it. */
  readonly slidingWindow: number | null;
  readonly logitsSoftCap: number | null;
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
    this.slidingWindow = opts.slidingWindow ?? null;
    if (this.slidingWindow !== null && !(Number.isInteger(this.slidingWindow) && this.slidingWindow >= 1)) {
      throw new ConfigError(`attention: slidingWindow must be a positive integer or null, got ${this.slidingWindow}`);
    }
    this.logitsSoftCap = opts.logitsSoftCap ?? null;
    if (this.logitsSoftCap !== null && !(this.logitsSoftCap > 0 && Number.isFinite(this.logitsSoftCap))) {
      throw new ConfigError(`attention: logitsSoftCap must be a positive number or null, got ${this.logitsSoftCap}`);
    }
  }

  /** The first key position a query at `pos` sees. */
  firstVisible(pos: number): number {
    return this.slidingWindow === null ? 0 : Math.max(0, pos - this.slidingWindow + 1);
  }

  /** What this layer keeps per token in a paged KV cache. */
  get kvCacheSpec(): KVCacheSpec {
    return { numKvHeads: this.numKvHeads, headDim: this.headDim, vHeadDim: this.vHeadDim, valueIsKeyPrefix: this.valueIsKeyPrefix, slidingWindow: this.slidingWindow };
  }

  /**
   * q `[T, H·D]`, k `[T, Hk·D]`, v `[T, Hk·Dv]` → `[T, H·Dv]`. With a cache the
   * new K/V rows are first written into their slots (through each sequence's
   * block table), then query i of a sequence sees its positions
   * `0 .. contextLen + i` read back from the cache. With `cache = null` every
   * contextLen must be 0 and nothing is kept. Async because the new rows are
   * read to the host (`data()`, which every backend, webgpu included, offers).
   */
  async forward(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D | null, meta: AttentionMetadata, cache: PagedKVCache | null): Promise<tf.Tensor2D> {
    const T = q.shape[0];
    this.checkInput('q', q, T, this.numHeads * this.headDim);
    this.checkInput('k', k, T, this.numKvHeads * this.headDim);
    if (this.valueIsKeyPrefix !== (v === null)) throw new ConfigError(`attention: v must be ${this.valueIsKeyPrefix ? 'null (it is read from K)' : 'given'}`);
    if (v) this.checkInput('v', v, T, this.numKvHeads * this.vHeadDim);
    validateMetadata(meta, T);
    this.checkCache(meta, cache);
    if (T === 0) return tf.zeros([0, this.numHeads * this.vHeadDim]); // an empty (dummy) step
    if (cache) {
      // Everything is written before anything is read: a sequence may read blocks another one writes in this step.
      const [kRows, vRows] = await Promise.all([k.data() as Promise<Float32Array>, v ? (v.data() as Promise<Float32Array>) : null]);
      cache.write(slotMapping(meta), kRows, vRows);
    }
    return tf.tidy(() => this.attend(q, k, v, meta, cache));
  }

  /** Records this layer's paged attention (K/V written into the next cache index, then attended) into `out`. */
  record(b: PlanBuilder, q: ActView, k: ActView, v: ActView | null, out: ActView): void {
    const want = (name: string, x: ActView, width: number) => {
      if (x.width !== width) throw new ConfigError(`attention: plan view ${name} has width ${x.width}, expected ${width}`);
    };
    want('q', q, this.numHeads * this.headDim);
    want('k', k, this.numKvHeads * this.headDim);
    if (this.valueIsKeyPrefix !== (v === null)) throw new ConfigError(`attention: v must be ${this.valueIsKeyPrefix ? 'null (it is read from K)' : 'given'}`);
    if (v) want('v', v, this.numKvHeads * this.vHeadDim);
    want('out', out, this.numHeads * this.vHeadDim);
    b.op({
      kind: 'attention',
      q, k, v, out,
      cacheIndex: b.nextCache(),
      numHeads: this.numHeads,
      numKvHeads: this.numKvHeads,
      headDim: this.headDim,
      vHeadDim: this.vHeadDim,
      scale: this.scale,
      logitsSoftCap: this.logitsSoftCap,
      slidingWindow: this.slidingWindow,
      valueIsKeyPrefix: this.valueIsKeyPrefix,
    });
  }

  /** The whole batch once the new K/V are in the cache: decodes in one batched call, every other sequence on its own. */
  private attend(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D | null, meta: AttentionMetadata, cache: PagedKVCache | null): tf.Tensor2D {
    const T = q.shape[0];
    // weft's webgpu kernel attends one sequence per dispatch; elsewhere decodes batch through tfjs ops.
    const batchDecodes = cache !== null && !webgpuKernelsActive();
    const decodes = batchDecodes ? meta.seqs.filter((s) => s.queryLen === 1 && s.contextLen > 0) : [];
    const parts: Array<{ rows: number[]; out: tf.Tensor2D }> = [];
    const keysRead = (s: SeqMetadata) => s.contextLen + 1 - this.firstVisible(s.contextLen);
    const perBatch = Math.max(1, Math.floor(this.maxScoreElements / (this.numHeads * Math.max(1, ...decodes.map(keysRead)))));
    for (let b0 = 0; b0 < decodes.length; b0 += perBatch) {
      const batch = decodes.slice(b0, b0 + perBatch);
      const rows = batch.map((s) => s.start);
      parts.push({ rows, out: this.attendDecodes(rows.length === T ? q : (tf.gather(q, rows) as tf.Tensor2D), batch, cache!) });
    }
    const batched = new Set(decodes);
    // A lone sequence owns every row: no slices (each is a copy on webgpu).
    const rowsOf = <X extends tf.Tensor2D>(x: X, s: SeqMetadata): X =>
      s.start === 0 && s.queryLen === T ? x : (tf.slice(x, [s.start, 0], [s.queryLen, -1]) as X);
    for (const s of meta.seqs) {
      if (batched.has(s)) continue;
      const L = s.queryLen;
      let kAll: tf.Tensor3D;
      let vAll: tf.Tensor3D;
      // Keys before the first query's window are never read (their blocks may be freed).
      const kvStart = this.firstVisible(s.contextLen);
      if (s.contextLen === 0) {
        // Nothing cached before this step: the keys are exactly the new rows.
        kAll = tf.reshape(rowsOf(k, s), [L, this.numKvHeads, this.headDim]);
        vAll = v ? tf.reshape(rowsOf(v, s), [L, this.numKvHeads, this.vHeadDim]) : tf.zeros([L, this.numKvHeads, 0]);
      } else {
        [kAll, vAll] = this.readContext(cache!, s.blockTable, kvStart, s.contextLen + L);
      }
      parts.push({ rows: Array.from({ length: L }, (_, i) => s.start + i), out: this.attendSequence(rowsOf(q, s), kAll, vAll, s.contextLen, kvStart) });
    }
    if (parts.length === 1) return parts[0]!.out;
    const out = tf.concat(parts.map((p) => p.out), 0) as tf.Tensor2D;
    // Back to the batch's row order (identity when decodes come first, as the scheduler puts them).
    const order = new Int32Array(T);
    let at = 0;
    for (const p of parts) for (const r of p.rows) order[r] = at++;
    return order.every((x, i) => x === i) ? out : (tf.gather(out, order) as tf.Tensor2D);
  }

  /** One sequence's positions `start .. end − 1` from the cache, token-major `[end − start, Hk, ·]` as attendSequence takes them. */
  private readContext(cache: PagedKVCache, blockTable: number[], start: number, end: number): [tf.Tensor3D, tf.Tensor3D] {
    const { numKvHeads: Hk, headDim: D, vHeadDim: Dv } = this;
    const n = end - start;
    const kBuf = stagingBuffer(0, n * Hk * D);
    cache.gatherTokenMajor('key', blockTable, end, kBuf, start);
    if (this.valueIsKeyPrefix) return [tf.tensor3d(kBuf, [n, Hk, D]), tf.zeros([n, Hk, 0])];
    const vBuf = stagingBuffer(1, n * Hk * Dv);
    cache.gatherTokenMajor('value', blockTable, end, vBuf, start);
    return [tf.tensor3d(kBuf, [n, Hk, D]), tf.tensor3d(vBuf, [n, Hk, Dv])];
  }

  /** `scale · q·kᵀ`, soft-capped when the layer caps logits. */
  private scores(qh: tf.Tensor3D, kh: tf.Tensor3D): tf.Tensor3D {
    const s = tf.mul(tf.matMul(qh, kh, false, true), this.scale) as tf.Tensor3D;
    const cap = this.logitsSoftCap;
    return cap === null ? s : (tf.mul(tf.tanh(tf.div(s, cap)), cap) as tf.Tensor3D);
  }

  /**
   * Decodes (one query each, at position contextLen) of B sequences in one
   * batched matmul: each context (its window's keys only, with a sliding
   * window) gathered from the cache head-major into `[B·Hk, Nmax, ·]`, padded
   * to the longest and masked past its own length.
   */
  private attendDecodes(q: tf.Tensor2D, seqs: SeqMetadata[], cache: PagedKVCache): tf.Tensor2D {
    const B = seqs.length;
    const { numKvHeads: Hk, groups: G, headDim: D, vHeadDim: Dv } = this;
    const starts = seqs.map((s) => this.firstVisible(s.contextLen));
    const lens = seqs.map((s, b) => s.contextLen + 1 - starts[b]!);
    const N = Math.max(...lens);
    // Each sequence's rows [Hk, N, ·] from the cache, zeros past its length (masked below; a reused buffer holds old rows there).
    const gather = (which: 'key' | 'value', slot: number, width: number): tf.Tensor3D => {
      const buf = stagingBuffer(slot, B * Hk * N * width);
      seqs.forEach((s, b) => {
        cache.gatherHeadMajor(which, s.blockTable, s.contextLen + 1, buf, b * Hk * N * width, N, starts[b]!);
        if (lens[b]! < N) for (let h = 0; h < Hk; h++) buf.fill(0, ((b * Hk + h) * N + lens[b]!) * width, (b * Hk + h + 1) * N * width);
      });
      return tf.tensor3d(buf, [B * Hk, N, width]);
    };
    const kh = gather('key', 0, D);
    const vh = this.valueIsKeyPrefix ? tf.slice(kh, [0, 0, 0], [-1, -1, Dv]) : gather('value', 1, Dv);
    // [B, Hk·G·D] → [B·Hk, G, D]: the G query heads of one KV head are the rows of one matmul.
    const qh = tf.reshape(q, [B * Hk, G, D]);
    let scores: tf.Tensor = this.scores(qh as tf.Tensor3D, kh); // [B·Hk, G, N]
    if (lens.some((n) => n < N)) {
      const mask = new Float32Array(B * N);
      lens.forEach((n, b) => mask.fill(MASKED, b * N + n, (b + 1) * N));
      scores = tf.reshape(tf.add(tf.reshape(scores, [B, Hk * G, N]), tf.tensor3d(mask, [B, 1, N])), [B * Hk, G, N]);
    }
    const probs = tf.softmax(scores) as tf.Tensor3D;
    // [B·Hk, G, Dv] → [B, H·Dv], head h = kv·G + g as in repeat_kv.
    return tf.reshape(tf.matMul(probs, vh), [B, Hk * G * Dv]);
  }

  /**
   * One sequence: q `[L, H·D]` (positions `contextLen ..`) against its keys
   * `[N, Hk, D]` at positions `kvStart .. kvStart + N − 1` → `[L, H·Dv]`.
   */
  private attendSequence(q: tf.Tensor2D, kAll: tf.Tensor3D, vAll: tf.Tensor3D, contextLen: number, kvStart: number): tf.Tensor2D {
    const L = q.shape[0];
    const N = kAll.shape[0];
    const fused = attentionKernel(q, kAll, vAll, {
      numHeads: this.numHeads,
      numKvHeads: this.numKvHeads,
      headDim: this.headDim,
      vHeadDim: this.vHeadDim,
      valueIsKeyPrefix: this.valueIsKeyPrefix,
      scale: this.scale,
      // Positions relative to the first key read: the window is a difference of positions.
      firstPos: contextLen - kvStart,
      slidingWindow: this.slidingWindow ?? 0,
      softCap: this.logitsSoftCap ?? 0,
    });
    if (fused) return fused;
    const kh = tf.transpose(kAll, [1, 0, 2]); // [Hk, N, D]
    const vh = this.valueIsKeyPrefix ? tf.slice(kh, [0, 0, 0], [-1, -1, this.vHeadDim]) : tf.transpose(vAll, [1, 0, 2]); // [Hk, N, Dv]
    const W = this.slidingWindow;
    // A chunk's keys: at most the window plus its queries (every key without a window).
    const keysPerQuery = W === null ? N : W;
    const chunk = Math.max(1, Math.min(this.queryChunk, Math.floor(this.maxScoreElements / (this.numHeads * Math.min(N, keysPerQuery + this.queryChunk)))));
    const outs: tf.Tensor2D[] = [];
    for (let i0 = 0; i0 < L; i0 += chunk) {
      const i1 = Math.min(L, i0 + chunk);
      // Causality: no query in [i0, i1) sees past key contextLen + i1 − 1, nor (window) before its first query's window.
      const hi = contextLen + i1 - kvStart;
      const lo = this.firstVisible(contextLen + i0) - kvStart;
      const qc = i0 === 0 && i1 === L ? q : tf.slice(q, [i0, 0], [i1 - i0, -1]);
      const kc = lo === 0 && hi === N ? kh : tf.slice(kh, [0, lo, 0], [-1, hi - lo, -1]);
      const vc = lo === 0 && hi === N ? vh : tf.slice(vh, [0, lo, 0], [-1, hi - lo, -1]);
      outs.push(this.attendChunk(qc as tf.Tensor2D, kc, vc, contextLen + i0, kvStart + lo));
    }
    return (outs.length === 1 ? outs[0]! : tf.concat(outs, 0)) as tf.Tensor2D;
  }

  /**
   * Queries at absolute positions `firstPos ..` against keys `[Hk, n, ·]` at
   * positions `keyPos .. keyPos + n − 1` (the last query sees up to the last key).
   */
  private attendChunk(q: tf.Tensor2D, kh: tf.Tensor3D, vh: tf.Tensor3D, firstPos: number, keyPos: number): tf.Tensor2D {
    const L = q.shape[0];
    const n = kh.shape[1];
    const { numKvHeads: Hk, groups: G, headDim: D, vHeadDim: Dv } = this;
    // [L, Hk, G, D] → [Hk, G, L, D] → [Hk, G·L, D]: the G heads of one KV head become rows of one matmul.
    const qh = tf.reshape(tf.transpose(tf.reshape(q, [L, Hk, G, D]), [1, 2, 0, 3]), [Hk, G * L, D]);
    let scores: tf.Tensor = this.scores(qh as tf.Tensor3D, kh); // [Hk, G·L, n]
    if (L > 1) {
      // Query r (position firstPos + r) sees key j (position keyPos + j) iff 0 ≤ (firstPos + r) − (keyPos + j) < window.
      // A single query (decode) sees exactly the keys it was given.
      const rows = tf.reshape(tf.range(firstPos - keyPos, firstPos - keyPos + L, 1, 'int32'), [L, 1]);
      const cols = tf.reshape(tf.range(0, n, 1, 'int32'), [1, n]);
      const dist = tf.sub(rows, cols);
      const hidden = this.slidingWindow === null ? tf.less(dist, 0) : tf.logicalOr(tf.less(dist, 0), tf.greaterEqual(dist, this.slidingWindow));
      const mask = tf.mul(tf.cast(hidden, 'float32'), MASKED); // [L, n]
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

  /** Checked before anything is written, so a bad step leaves the cache as it was. */
  private checkCache(meta: AttentionMetadata, cache: PagedKVCache | null): void {
    if (!cache) {
      const s = meta.seqs.find((x) => x.contextLen !== 0);
      if (s) throw new ConfigError(`attention: sequence ${s.seqId} has contextLen ${s.contextLen} but no KV cache was given`);
      return;
    }
    const c = cache.spec;
    const want = this.kvCacheSpec;
    if (c.numKvHeads !== want.numKvHeads || c.headDim !== want.headDim || c.vHeadDim !== want.vHeadDim || c.valueIsKeyPrefix !== want.valueIsKeyPrefix) {
      throw new ConfigError(`attention: the cache is for ${JSON.stringify(c)}, the layer needs ${JSON.stringify(want)}`);
    }
    if (cache.blockSize !== meta.blockSize) throw new ConfigError(`attention: the cache has blocks of ${cache.blockSize} tokens, the step's metadata says ${meta.blockSize}`);
    validateBlockTables(meta, cache.numBlocks, this.slidingWindow);
  }
}
