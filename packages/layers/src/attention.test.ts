import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAttentionMetadata, type AttentionMetadata } from './attention-metadata.js';
import { Attention } from './attention.js';
import { KVCache } from './kv-cache.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5) * 3;
  };
}

interface Dims {
  H: number;
  Hk: number;
  D: number;
  Dv: number;
}

/**
 * Naive float64 causal attention of one sequence, HF eager semantics:
 * query i (position ctx + i) of head h attends keys 0..ctx+i of KV head ⌊h/G⌋.
 * q `[L·H·D]`, keys `[N·Hk·D]`, values `[N·Hk·Dv]` (N = ctx + L) → `[L·H·Dv]`.
 */
function refAttention(q: ArrayLike<number>, keys: ArrayLike<number>, values: ArrayLike<number>, L: number, ctx: number, d: Dims, scale: number): Float64Array {
  const { H, Hk, D, Dv } = d;
  const G = H / Hk;
  const out = new Float64Array(L * H * Dv);
  for (let i = 0; i < L; i++) {
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      const n = ctx + i + 1;
      const s = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let x = 0; x < D; x++) dot += q[(i * H + h) * D + x]! * keys[(j * Hk + kh) * D + x]!;
        s[j] = dot * scale;
      }
      const m = Math.max(...s);
      let z = 0;
      for (let j = 0; j < n; j++) z += (s[j] = Math.exp(s[j]! - m));
      for (let x = 0; x < Dv; x++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += (s[j]! / z) * values[(j * Hk + kh) * Dv + x]!;
        out[(i * H + h) * Dv + x] = acc;
      }
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Runs one mixed step: each sequence's context is pre-filled into the cache, then all new tokens go through forward. */
function mixedStep(d: Dims, seqs: Array<{ seqId: number; queryLen: number; contextLen: number }>, seed: number, chunking: { maxScoreElements?: number; queryChunk?: number } = {}) {
  const r = rng(seed);
  const scale = 1 / Math.sqrt(d.D);
  const attn = new Attention({ numHeads: d.H, numKvHeads: d.Hk, headDim: d.D, vHeadDim: d.Dv, scale, ...chunking });
  const cache = new KVCache(d.Hk, d.D, d.Dv);
  const ctxK = new Map<number, Float32Array>();
  const ctxV = new Map<number, Float32Array>();
  for (const s of seqs) {
    if (s.contextLen === 0) continue;
    const k = Float32Array.from({ length: s.contextLen * d.Hk * d.D }, r);
    const v = Float32Array.from({ length: s.contextLen * d.Hk * d.Dv }, r);
    ctxK.set(s.seqId, k);
    ctxV.set(s.seqId, v);
    tf.tidy(() => cache.append(s.seqId, tf.tensor3d(k, [s.contextLen, d.Hk, d.D]), tf.tensor3d(v, [s.contextLen, d.Hk, d.Dv])));
  }
  const meta = buildAttentionMetadata(seqs);
  const T = seqs.reduce((n, s) => n + s.queryLen, 0);
  const q = Float32Array.from({ length: T * d.H * d.D }, r);
  const k = Float32Array.from({ length: T * d.Hk * d.D }, r);
  const v = Float32Array.from({ length: T * d.Hk * d.Dv }, r);
  const out = tf.tidy(() =>
    attn.forward(tf.tensor2d(q, [T, d.H * d.D]), tf.tensor2d(k, [T, d.Hk * d.D]), tf.tensor2d(v, [T, d.Hk * d.Dv]), meta, cache),
  );
  const got = out.dataSync();
  out.dispose();
  const want = new Float64Array(T * d.H * d.Dv);
  for (const s of meta.seqs) {
    const keys = [...(ctxK.get(s.seqId) ?? []), ...k.subarray(s.start * d.Hk * d.D, (s.start + s.queryLen) * d.Hk * d.D)];
    const values = [...(ctxV.get(s.seqId) ?? []), ...v.subarray(s.start * d.Hk * d.Dv, (s.start + s.queryLen) * d.Hk * d.Dv)];
    const qs = q.subarray(s.start * d.H * d.D, (s.start + s.queryLen) * d.H * d.D);
    want.set(refAttention(qs, keys, values, s.queryLen, s.contextLen, d, scale), s.start * d.H * d.Dv);
  }
  // The cache now holds context + new tokens.
  for (const s of seqs) expect(cache.length(s.seqId)).toBe(s.contextLen + s.queryLen);
  cache.dispose();
  return { got, want };
}

const MIXED = [
  { seqId: 10, queryLen: 5, contextLen: 0 }, // prefill
  { seqId: 11, queryLen: 1, contextLen: 7 }, // decode
  { seqId: 12, queryLen: 3, contextLen: 4 }, // chunked prefill continuing
  { seqId: 13, queryLen: 1, contextLen: 0 }, // one-token prompt
];

describe('Attention vs a naive float64 reference', () => {
  const shapes: Array<[string, Dims]> = [
    ['MHA (GQA ratio 1)', { H: 4, Hk: 4, D: 16, Dv: 16 }],
    ['GQA ratio 2', { H: 4, Hk: 2, D: 16, Dv: 16 }],
    ['GQA ratio 4', { H: 8, Hk: 2, D: 8, Dv: 8 }],
    ['MQA', { H: 6, Hk: 1, D: 16, Dv: 16 }],
    ['v head 32 vs qk head 48 (DeepSeek-like)', { H: 4, Hk: 4, D: 48, Dv: 32 }],
    ['GQA with a different v head', { H: 6, Hk: 3, D: 12, Dv: 20 }],
  ];
  for (const [name, d] of shapes) {
    it(`${name}: mixed batch of prefill, decode and chunked prefill`, () => {
      const { got, want } = mixedStep(d, MIXED, 1);
      expect(maxAbsDiff(got, want)).toBeLessThan(2e-5);
    });
  }

  it('long prefills split into query chunks give the same result', () => {
    const d = { H: 4, Hk: 2, D: 8, Dv: 8 };
    const seqs = [
      { seqId: 1, queryLen: 9, contextLen: 3 },
      { seqId: 2, queryLen: 6, contextLen: 0 },
    ];
    for (const chunking of [{ maxScoreElements: 1 }, { maxScoreElements: 4 * 12 * 3 }, { maxScoreElements: 4 * 12 * 4 }, { queryChunk: 2 }]) {
      const { got, want } = mixedStep(d, seqs, 2, chunking);
      expect(maxAbsDiff(got, want)).toBeLessThan(2e-5);
    }
  });
});

describe('Attention through the KV cache', () => {
  const d = { H: 4, Hk: 2, D: 8, Dv: 6 };
  const scale = 0.3;
  const attn = new Attention({ numHeads: d.H, numKvHeads: d.Hk, headDim: d.D, vHeadDim: d.Dv, scale });
  const lens = new Map([
    [1, 7],
    [2, 4],
  ]);
  const r = rng(5);
  const data = new Map(
    [...lens].map(([id, n]) => [
      id,
      {
        q: Float32Array.from({ length: n * d.H * d.D }, r),
        k: Float32Array.from({ length: n * d.Hk * d.D }, r),
        v: Float32Array.from({ length: n * d.Hk * d.Dv }, r),
      },
    ]),
  );
  /** Rows [from, from + n) of sequence id, as tensors of this step. */
  const rows = (id: number, from: number, n: number) => {
    const x = data.get(id)!;
    return {
      q: x.q.subarray(from * d.H * d.D, (from + n) * d.H * d.D),
      k: x.k.subarray(from * d.Hk * d.D, (from + n) * d.Hk * d.D),
      v: x.v.subarray(from * d.Hk * d.Dv, (from + n) * d.Hk * d.Dv),
    };
  };
  const step = (meta: AttentionMetadata, cache: KVCache | null): Float32Array => {
    const parts = meta.seqs.map((s) => rows(s.seqId, s.contextLen, s.queryLen));
    const cat = (key: 'q' | 'k' | 'v') => Float32Array.from(parts.flatMap((p) => Array.from(p[key])));
    const T = meta.seqs.reduce((n, s) => n + s.queryLen, 0);
    const out = tf.tidy(() =>
      attn.forward(
        tf.tensor2d(cat('q'), [T, d.H * d.D]),
        tf.tensor2d(cat('k'), [T, d.Hk * d.D]),
        tf.tensor2d(cat('v'), [T, d.Hk * d.Dv]),
        meta,
        cache,
      ),
    );
    const a = out.dataSync() as Float32Array;
    out.dispose();
    return a;
  };

  it('prefill then decode equals the full-sequence forward, and leaks nothing across steps', () => {
    // Reference: both whole sequences in one step, no cache.
    const full = step(buildAttentionMetadata([...lens].map(([seqId, queryLen]) => ({ seqId, queryLen }))), null);
    const fullOf = (id: number, i: number) => {
      const start = id === 1 ? 0 : lens.get(1)!;
      return Array.from(full.subarray((start + i) * d.H * d.Dv, (start + i + 1) * d.H * d.Dv));
    };

    const cache = new KVCache(d.Hk, d.D, d.Dv);
    const before = tf.memory().numTensors;
    // Step 1: prefill 3 tokens of seq 1, 2 of seq 2.
    const ctx = new Map([
      [1, 3],
      [2, 2],
    ]);
    const pre = step(buildAttentionMetadata([...ctx].map(([seqId, queryLen]) => ({ seqId, queryLen }))), cache);
    for (let i = 0; i < 3; i++) expect(maxAbsDiff(pre.subarray(i * d.H * d.Dv, (i + 1) * d.H * d.Dv), fullOf(1, i))).toBeLessThan(1e-5);
    // Then decode one token per sequence per step; seq 2 finishes first and is freed.
    while ([...ctx].some(([id, c]) => c < lens.get(id)!)) {
      const live = [...ctx].filter(([id, c]) => c < lens.get(id)!);
      const out = step(buildAttentionMetadata(live.map(([seqId, contextLen]) => ({ seqId, queryLen: 1, contextLen }))), cache);
      live.forEach(([id, c], row) => {
        expect(maxAbsDiff(out.subarray(row * d.H * d.Dv, (row + 1) * d.H * d.Dv), fullOf(id, c))).toBeLessThan(1e-5);
        ctx.set(id, c + 1);
        if (c + 1 === lens.get(id)) cache.free(id);
      });
      // Only the cache's K and V for the sequences still alive remain.
      expect(tf.memory().numTensors).toBe(before + 2 * cache.seqIds().length);
    }
    expect(cache.bytes()).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('an empty step gives an empty output', () => {
    const empty = step({ seqs: [] }, null);
    expect(empty.length).toBe(0);
  });

  it('rejects a context length the cache does not hold, and a context without a cache', () => {
    const cache = new KVCache(d.Hk, d.D, d.Dv);
    const meta = buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 2 }]);
    expect(() => step(meta, cache)).toThrow(/cache holds 0 tokens/);
    expect(() => step(meta, null)).toThrow(/no KV cache/);
    expect(cache.length(1)).toBe(0);
    expect(() => new Attention({ numHeads: 6, numKvHeads: 4, headDim: 8, scale: 1 })).toThrow(/num_heads=6 is not divisible by num_kv_heads=4/);
  });
});

describe('Attention with V inside K (MLA latent cache)', () => {
  it('equals explicit V = K[..., :Dv], prefill then decode, and caches K only', () => {
    const H = 4;
    const D = 12;
    const Dv = 8;
    const rnd = (shape: [number, number], seed: number) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(seed * 1000 + i * 0.7)), shape) as tf.Tensor2D;
    const prefix = new Attention({ numHeads: H, numKvHeads: 1, headDim: D, vHeadDim: Dv, scale: 0.3, valueIsKeyPrefix: true });
    const plain = new Attention({ numHeads: H, numKvHeads: 1, headDim: D, vHeadDim: Dv, scale: 0.3 });
    const c1 = new KVCache();
    const c2 = new KVCache();
    for (const [step, len, ctx] of [[0, 5, 0], [1, 1, 5], [2, 1, 6]] as const) {
      const q = rnd([len, H * D], 10 + step);
      const k = rnd([len, D], 20 + step);
      const meta = buildAttentionMetadata([{ seqId: 7, queryLen: len, contextLen: ctx }]);
      const a = prefix.forward(q, k, null, meta, c1);
      const b = plain.forward(q, k, tf.slice(k, [0, 0], [-1, Dv]) as tf.Tensor2D, meta, c2);
      expect(Math.max(...Array.from(tf.abs(tf.sub(a, b)).dataSync()))).toBeLessThan(1e-6);
    }
    // K only: [7 tokens, 1 head, 12] floats, and a zero-width V.
    expect(c1.bytes()).toBe(7 * D * 4);
    expect(() => prefix.forward(rnd([1, H * D], 1), rnd([1, D], 2), rnd([1, Dv], 3), buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 0 }]), null)).toThrow(/v must be null/);
    c1.dispose();
    c2.dispose();
  });
});
