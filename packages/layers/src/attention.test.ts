/**
 * Paged attention against dense causal attention written in plain tfjs ops
 * (repeat_kv by gather, one masked softmax per sequence, no cache), on the
 * cpu, wasm, tensorflow and webgpu backends: mixed batches of prefills, chunked
 * prefills and decodes over shuffled, non-contiguous and shared blocks.
 */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, tensorflowInstalled, type BackendName } from '@weft/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAttentionMetadata, type AttentionMetadata } from './attention-metadata.js';
import { Attention } from './attention.js';
import { configureWebgpuKernels, type WebgpuKernelSettings } from './kernels/index.js';
import { PagedKVCache } from './paged-kv-cache.js';

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
  /** V = K[..., :Dv] (MLA's latent cache). */
  prefix?: boolean;
}

/**
 * HF eager attention of one sequence, dense: q `[L, H·D]` at positions
 * `ctx ..` against all its keys `[N, Hk·D]`, values `[N, Hk·Dv]` → `[L, H·Dv]`.
 */
async function denseAttention(q: Float32Array, k: Float32Array, v: Float32Array, L: number, ctx: number, d: Dims, scale: number, o: WindowOpts = {}): Promise<Float32Array> {
  const N = ctx + L;
  const out = tf.tidy(() => {
    const repeat = tf.tensor1d(Array.from({ length: d.H }, (_, h) => Math.floor(h / (d.H / d.Hk))), 'int32');
    const qh = tf.transpose(tf.tensor3d(q, [L, d.H, d.D]), [1, 0, 2]);
    const kh = tf.gather(tf.transpose(tf.tensor3d(k, [N, d.Hk, d.D]), [1, 0, 2]), repeat);
    const vh = tf.gather(tf.transpose(tf.tensor3d(v, [N, d.Hk, d.Dv]), [1, 0, 2]), repeat);
    let scores = tf.mul(tf.matMul(qh, kh, false, true), scale);
    // Gemma 2: cap · tanh(scores / cap) before the mask.
    if (o.logitsSoftCap) scores = tf.mul(tf.tanh(tf.div(scores, o.logitsSoftCap)), o.logitsSoftCap);
    const rows = tf.reshape(tf.range(ctx, N, 1, 'int32'), [L, 1]);
    const cols = tf.reshape(tf.range(0, N, 1, 'int32'), [1, N]);
    // HF's sliding_window_overlay: key j is seen from query i iff j > i − window.
    const outside = o.slidingWindow ? tf.logicalOr(tf.greater(cols, rows), tf.lessEqual(cols, tf.sub(rows, o.slidingWindow))) : tf.greater(cols, rows);
    const masked = tf.where(outside, tf.fill([L, N], -Infinity), tf.zeros([L, N]));
    const probs = tf.softmax(tf.add(scores, masked));
    return tf.reshape(tf.transpose(tf.matMul(probs, vh), [1, 0, 2]), [L, d.H * d.Dv]);
  });
  const a = (await out.data()) as Float32Array;
  out.dispose();
  return a;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Block ids 0 .. n − 1 in a seeded random order: tables are non-contiguous and shuffled. */
function shuffledBlocks(n: number, seed: number): number[] {
  const r = rng(seed);
  const ids = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(((r() / 3 + 0.5) * (i + 1)) % (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  return ids;
}

interface WindowOpts {
  slidingWindow?: number | null;
  logitsSoftCap?: number | null;
}

interface SeqSpec {
  seqId: number;
  contextLen: number;
  queryLen: number;
  /** Shares its first `blocks` blocks (K/V and ids) with sequence `seqId`. */
  shares?: { seqId: number; blocks: number };
}

/** A sequence's K/V over all its positions, its queries for this step, its block table. */
interface SeqData {
  k: Float32Array;
  v: Float32Array;
  q: Float32Array;
  table: number[];
}

/**
 * One step: every sequence's context is written into a fresh cache (as
 * earlier steps or another request with the same prefix would have), then
 * the new tokens of all sequences go through one `forward`. Returns the
 * output and the dense reference, row for row.
 */
async function pagedStep(d: Dims, blockSize: number, specs: SeqSpec[], seed: number, chunking: { maxScoreElements?: number; queryChunk?: number } & WindowOpts = {}) {
  const r = rng(seed);
  const scale = 1 / Math.sqrt(d.D);
  const vw = d.prefix ? d.D : d.Dv; // V is read from K's first Dv dims; generate K only.
  const need = specs.map((s) => Math.ceil((s.contextLen + s.queryLen) / blockSize));
  const numBlocks = need.reduce((a, b) => a + b, 0) + 3;
  const free = shuffledBlocks(numBlocks, seed + 1);
  const cache = new PagedKVCache({ numBlocks, blockSize, numKvHeads: d.Hk, headDim: d.D, vHeadDim: d.Dv, valueIsKeyPrefix: !!d.prefix });
  const data = new Map<number, SeqData>();
  specs.forEach((s, i) => {
    const N = s.contextLen + s.queryLen;
    const k = Float32Array.from({ length: N * d.Hk * d.D }, r);
    const v = d.prefix ? new Float32Array(0) : Float32Array.from({ length: N * d.Hk * vw }, r);
    const q = Float32Array.from({ length: s.queryLen * d.H * d.D }, r);
    const table: number[] = [];
    let shared = 0;
    if (s.shares) {
      const o = data.get(s.shares.seqId)!;
      shared = s.shares.blocks * blockSize;
      expect(shared).toBeLessThanOrEqual(s.contextLen);
      table.push(...o.table.slice(0, s.shares.blocks));
      k.set(o.k.subarray(0, shared * d.Hk * d.D));
      if (!d.prefix) v.set(o.v.subarray(0, shared * d.Hk * vw));
    }
    while (table.length < need[i]!) table.push(free.pop()!);
    // Context this sequence owns (past the shared blocks) goes into the pool now.
    const slots = Array.from({ length: s.contextLen - shared }, (_, j) => table[Math.floor((shared + j) / blockSize)]! * blockSize + ((shared + j) % blockSize));
    cache.write(slots, k.slice(shared * d.Hk * d.D, s.contextLen * d.Hk * d.D), d.prefix ? null : v.slice(shared * d.Hk * vw, s.contextLen * d.Hk * vw));
    data.set(s.seqId, { k, v, q, table });
  });
  // With a window, blocks wholly before the first query's window are freed by the engine: −1, which a read would reject.
  const W = chunking.slidingWindow ?? null;
  const freedBefore = (s: SeqSpec) => (W === null ? 0 : Math.floor(Math.max(0, s.contextLen - W + 1) / blockSize));
  const meta = buildAttentionMetadata(
    specs.map((s) => ({ seqId: s.seqId, queryLen: s.queryLen, contextLen: s.contextLen, blockTable: data.get(s.seqId)!.table.map((b, i) => (i < freedBefore(s) ? -1 : b)) })),
    blockSize,
  );
  const T = specs.reduce((n, s) => n + s.queryLen, 0);
  const cat = (f: (x: SeqData, s: SeqSpec) => Float32Array) => {
    const parts = specs.map((s) => f(data.get(s.seqId)!, s));
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) out.set(p, (at += p.length) - p.length);
    return out;
  };
  const qIn = cat((x) => x.q);
  const kIn = cat((x, s) => x.k.subarray(s.contextLen * d.Hk * d.D));
  const vIn = cat((x, s) => x.v.subarray(s.contextLen * d.Hk * vw));
  const attn = new Attention({ numHeads: d.H, numKvHeads: d.Hk, headDim: d.D, vHeadDim: d.Dv, valueIsKeyPrefix: !!d.prefix, scale, ...chunking });
  const before = tf.memory().numTensors;
  const [qT, kT, vT] = [tf.tensor2d(qIn, [T, d.H * d.D]), tf.tensor2d(kIn, [T, d.Hk * d.D]), d.prefix ? null : tf.tensor2d(vIn, [T, d.Hk * d.Dv])];
  const out = await attn.forward(qT, kT, vT, meta, cache);
  const got = (await out.data()) as Float32Array;
  tf.dispose([qT, kT, vT!, out].filter(Boolean));
  expect(tf.memory().numTensors, 'tensors left behind by a step').toBe(before);
  const want = new Float32Array(T * d.H * d.Dv);
  for (const s of meta.seqs) {
    const x = data.get(s.seqId)!;
    const N = s.contextLen + s.queryLen;
    const values = d.prefix ? Float32Array.from({ length: N * d.Hk * d.Dv }, (_, i) => x.k[Math.floor(i / d.Dv) * d.D + (i % d.Dv)]!) : x.v;
    want.set(await denseAttention(x.q, x.k, values, s.queryLen, s.contextLen, d, scale, chunking), s.start * d.H * d.Dv);
  }
  cache.dispose();
  return { got, want, meta };
}

const SHAPES: Array<[string, Dims]> = [
  ['MHA', { H: 4, Hk: 4, D: 16, Dv: 16 }],
  ['GQA ratio 2', { H: 4, Hk: 2, D: 16, Dv: 16 }],
  ['GQA ratio 4', { H: 8, Hk: 2, D: 8, Dv: 8 }],
  ['MQA', { H: 6, Hk: 1, D: 16, Dv: 16 }],
  ['v head 20 vs qk head 12 (GQA)', { H: 6, Hk: 3, D: 12, Dv: 20 }],
  ['V inside K (MLA latent: one head, Dv < D)', { H: 4, Hk: 1, D: 24, Dv: 16, prefix: true }],
];

/** Decodes interleaved with prefills, so the batched decodes' rows go back in place. */
const MIXED: SeqSpec[] = [
  { seqId: 10, contextLen: 0, queryLen: 5 }, // prefill
  { seqId: 11, contextLen: 7, queryLen: 1 }, // decode
  { seqId: 12, contextLen: 4, queryLen: 3 }, // chunked prefill continuing a prompt
  { seqId: 13, contextLen: 40, queryLen: 1 }, // decode, much longer: the others are padded and masked
  { seqId: 14, contextLen: 0, queryLen: 1 }, // one-token prompt
  { seqId: 15, contextLen: 17, queryLen: 6 }, // chunk over several blocks
  { seqId: 16, contextLen: 2, queryLen: 1 }, // decode
];

const TOL = 2e-5;

const BACKENDS: Array<{ backend: BackendName; skip: string | null; kernels?: boolean }> = [
  { backend: 'cpu', skip: null },
  { backend: 'wasm', skip: null },
  (() => {
    const found = tensorflowInstalled();
    return { backend: 'tensorflow' as const, skip: 'missing' in found ? `SKIPPED (tensorflow backend): ${found.missing}` : null };
  })(),
  // weft's attention kernel (one sequence per dispatch) reading the same paged cache; Dawn's OpenGL fallback on CPU-only machines.
  { backend: 'webgpu', skip: null },
  // The same through tfjs ops (WEFT_WEBGPU_KERNELS=0): decodes batched as on the CPU backends.
  { backend: 'webgpu', skip: null, kernels: false },
];

describe.each(BACKENDS)('paged attention on $backend (weft kernels: $kernels)', ({ backend, skip, kernels }) => {
  if (skip) {
    console.log(skip);
    it.skip(skip, () => {});
    return;
  }
  let saved: WebgpuKernelSettings | null = null;
  beforeAll(async () => {
    if (kernels === false) saved = configureWebgpuKernels({ kernels: false });
    await initBackend({ prefer: backend });
  });
  afterAll(() => {
    if (saved) configureWebgpuKernels(saved);
  });

  describe.each(SHAPES)('%s', (_name, d) => {
    it.each([1, 3, 16])('mixed batch over shuffled blocks of %i equals dense attention', async (blockSize) => {
      const { got, want } = await pagedStep(d, blockSize, MIXED, 100 + blockSize);
      expect(maxAbsDiff(got, want)).toBeLessThan(TOL);
    });
  });

  it.each([1, 3, 16])('sequences sharing prefix blocks (block size %i) read the same K/V', async (blockSize) => {
    const d = { H: 4, Hk: 2, D: 8, Dv: 8 };
    const shared = Math.max(1, Math.floor(12 / blockSize));
    const ctx = shared * blockSize;
    const specs: SeqSpec[] = [
      { seqId: 1, contextLen: ctx + 3, queryLen: 1 }, // owns the prefix
      { seqId: 2, contextLen: ctx, queryLen: 4, shares: { seqId: 1, blocks: shared } }, // prefix-cache hit, then its own chunk
      { seqId: 3, contextLen: ctx + 1, queryLen: 1, shares: { seqId: 1, blocks: shared } }, // decoding past the shared prefix
    ];
    const { got, want, meta } = await pagedStep(d, blockSize, specs, 7);
    expect(meta.seqs[1]!.blockTable.slice(0, shared)).toEqual(meta.seqs[0]!.blockTable.slice(0, shared));
    expect(maxAbsDiff(got, want)).toBeLessThan(TOL);
  });

  it('long prefills in query chunks and decodes split into sub-batches give the same result', async () => {
    const d = { H: 4, Hk: 2, D: 8, Dv: 8 };
    const specs: SeqSpec[] = [
      { seqId: 1, contextLen: 3, queryLen: 9 },
      { seqId: 2, contextLen: 0, queryLen: 6 },
      { seqId: 3, contextLen: 9, queryLen: 1 },
      { seqId: 4, contextLen: 30, queryLen: 1 },
      { seqId: 5, contextLen: 1, queryLen: 1 },
    ];
    for (const chunking of [{ maxScoreElements: 1 }, { maxScoreElements: 4 * 31 * 2 }, { maxScoreElements: 4 * 12 * 4 }, { queryChunk: 2 }]) {
      const { got, want } = await pagedStep(d, 3, specs, 2, chunking);
      expect(maxAbsDiff(got, want)).toBeLessThan(TOL);
    }
  });

  describe.each([
    ['window 5', { slidingWindow: 5 }],
    ['window 1', { slidingWindow: 1 }],
    ['window 12, soft-cap 0.7', { slidingWindow: 12, logitsSoftCap: 0.7 }],
    ['soft-cap 2 only', { logitsSoftCap: 2 }],
  ] as Array<[string, WindowOpts]>)('%s', (_name, win) => {
    it.each([1, 3, 16])('mixed batch over shuffled blocks of %i, blocks before the window freed, equals dense attention', async (blockSize) => {
      for (const d of [SHAPES[1]![1], SHAPES[5]![1]]) {
        const { got, want } = await pagedStep(d, blockSize, MIXED, 300 + blockSize, win);
        expect(maxAbsDiff(got, want)).toBeLessThan(TOL);
      }
    });

    it('in query chunks and decode sub-batches', async () => {
      const d = { H: 4, Hk: 2, D: 8, Dv: 8 };
      const specs: SeqSpec[] = [
        { seqId: 1, contextLen: 13, queryLen: 19 },
        { seqId: 2, contextLen: 0, queryLen: 17 },
        { seqId: 3, contextLen: 9, queryLen: 1 },
        { seqId: 4, contextLen: 30, queryLen: 1 },
      ];
      for (const chunking of [{ maxScoreElements: 1 }, { maxScoreElements: 4 * 31 * 2 }, { queryChunk: 4 }, {}]) {
        const { got, want } = await pagedStep(d, 3, specs, 4, { ...chunking, ...win });
        expect(maxAbsDiff(got, want)).toBeLessThan(TOL);
      }
    });
  });

  it('prefill, chunked prefill and decodes through forward alone equal the uncached full-sequence forward', async () => {
    const d = { H: 4, Hk: 2, D: 8, Dv: 6 };
    const scale = 0.3;
    const attn = new Attention({ numHeads: d.H, numKvHeads: d.Hk, headDim: d.D, vHeadDim: d.Dv, scale });
    const lens = new Map([
      [1, 11],
      [2, 6],
    ]);
    const r = rng(5);
    const src = new Map(
      [...lens].map(([id, n]) => [
        id,
        {
          q: Float32Array.from({ length: n * d.H * d.D }, r),
          k: Float32Array.from({ length: n * d.Hk * d.D }, r),
          v: Float32Array.from({ length: n * d.Hk * d.Dv }, r),
        },
      ]),
    );
    const blockSize = 3;
    const cache = new PagedKVCache({ numBlocks: 12, blockSize, numKvHeads: d.Hk, headDim: d.D, vHeadDim: d.Dv, valueIsKeyPrefix: false });
    const free = shuffledBlocks(12, 9);
    const tables = new Map<number, number[]>([
      [1, []],
      [2, []],
    ]);
    const step = async (seqs: Array<{ seqId: number; contextLen: number; queryLen: number }>, withCache: boolean) => {
      for (const s of seqs) {
        const t = tables.get(s.seqId)!;
        while (withCache && t.length * blockSize < s.contextLen + s.queryLen) t.push(free.pop()!);
      }
      const meta = buildAttentionMetadata(
        seqs.map((s) => ({ ...s, blockTable: withCache ? [...tables.get(s.seqId)!] : [] })),
        blockSize,
      );
      const rows = (key: 'q' | 'k' | 'v', w: number) => {
        const parts = seqs.map((s) => src.get(s.seqId)![key].subarray(s.contextLen * w, (s.contextLen + s.queryLen) * w));
        return Float32Array.from(parts.flatMap((p) => Array.from(p)));
      };
      const T = seqs.reduce((n, s) => n + s.queryLen, 0);
      const inputs = [tf.tensor2d(rows('q', d.H * d.D), [T, d.H * d.D]), tf.tensor2d(rows('k', d.Hk * d.D), [T, d.Hk * d.D]), tf.tensor2d(rows('v', d.Hk * d.Dv), [T, d.Hk * d.Dv])];
      const out = await attn.forward(inputs[0]!, inputs[1]!, inputs[2]!, meta, withCache ? cache : null);
      const a = (await out.data()) as Float32Array;
      tf.dispose([...inputs, out]);
      return { a, meta };
    };
    const full = (await step([...lens].map(([seqId, n]) => ({ seqId, contextLen: 0, queryLen: n })), false)).a;
    const fullRow = (id: number, p: number) => {
      const start = id === 1 ? p : lens.get(1)! + p;
      return full.subarray(start * d.H * d.Dv, (start + 1) * d.H * d.Dv);
    };
    const before = tf.memory().numTensors;
    const ctx = new Map([
      [1, 0],
      [2, 0],
    ]);
    // Seq 1 prefills in chunks of 4 while seq 2 prefills at once, then both decode to the end.
    const plan: Array<Array<[number, number]>> = [[[1, 4], [2, 3]], [[2, 1], [1, 4]], [[1, 2], [2, 1]]];
    while ([...ctx].some(([id, c]) => c < lens.get(id)!)) {
      const next = plan.shift() ?? [...ctx].filter(([id, c]) => c < lens.get(id)!).map(([id]) => [id, 1] as [number, number]);
      const seqs = next.map(([seqId, n]) => ({ seqId, contextLen: ctx.get(seqId)!, queryLen: n }));
      const { a, meta } = await step(seqs, true);
      for (const s of meta.seqs) {
        for (let i = 0; i < s.queryLen; i++) {
          const row = a.subarray((s.start + i) * d.H * d.Dv, (s.start + i + 1) * d.H * d.Dv);
          expect(maxAbsDiff(row, fullRow(s.seqId, s.contextLen + i)), `seq ${s.seqId} position ${s.contextLen + i}`).toBeLessThan(1e-5);
        }
        ctx.set(s.seqId, s.contextLen + s.queryLen);
      }
      expect(tf.memory().numTensors).toBe(before);
    }
    cache.dispose();
  });

  it('an empty step gives an empty output', async () => {
    const attn = new Attention({ numHeads: 2, numKvHeads: 1, headDim: 4, scale: 0.5 });
    const out = await attn.forward(tf.zeros([0, 8]), tf.zeros([0, 4]), tf.zeros([0, 4]), { seqs: [], blockSize: 16 }, null);
    expect(out.shape).toEqual([0, 8]);
    out.dispose();
  });

  it('rejects bad block tables, mismatched caches and a context without a cache, writing nothing', async () => {
    const d = { H: 4, Hk: 2, D: 8, Dv: 8 };
    const attn = new Attention({ numHeads: d.H, numKvHeads: d.Hk, headDim: d.D, scale: 1 });
    const cache = new PagedKVCache({ numBlocks: 4, blockSize: 2, numKvHeads: 2, headDim: 8, vHeadDim: 8, valueIsKeyPrefix: false });
    const q = tf.ones([1, 32]) as tf.Tensor2D;
    const k = tf.ones([1, 16]) as tf.Tensor2D;
    const v = tf.ones([1, 16]) as tf.Tensor2D;
    const run = (meta: AttentionMetadata, c: PagedKVCache | null = cache) => attn.forward(q, k, v, meta, c);
    await expect(run(buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 2, blockTable: [0] }], 2))).rejects.toThrow(/3 tokens, which need 2 blocks of 2, but its block table has 1/);
    await expect(run(buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 0, blockTable: [4] }], 2))).rejects.toThrow(/block 0 is 4, outside the pool of 4 blocks/);
    await expect(run(buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 0, blockTable: [0] }], 16))).rejects.toThrow(/blocks of 2 tokens, the step's metadata says 16/);
    await expect(run(buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 2 }]), null)).rejects.toThrow(/no KV cache/);
    const other = new PagedKVCache({ numBlocks: 4, blockSize: 2, numKvHeads: 1, headDim: 8, vHeadDim: 8, valueIsKeyPrefix: false });
    await expect(run(buildAttentionMetadata([{ seqId: 1, queryLen: 1, blockTable: [0] }], 2), other)).rejects.toThrow(/the cache is for .*"numKvHeads":1.*the layer needs .*"numKvHeads":2/);
    const mla = new Attention({ numHeads: 4, numKvHeads: 1, headDim: 12, vHeadDim: 8, scale: 1, valueIsKeyPrefix: true });
    await expect(mla.forward(tf.ones([1, 48]), tf.ones([1, 12]), tf.ones([1, 8]), buildAttentionMetadata([{ seqId: 1, queryLen: 1 }]), null)).rejects.toThrow(/v must be null/);
    // Nothing was written by the rejected steps (the windowed one that ran wrote block 0).
    cache.write([0, 1], new Float32Array(32), new Float32Array(32));
    const seen = new Float32Array(4 * 2 * 2 * 8);
    cache.gatherTokenMajor('key', [0, 1, 2, 3], 8, seen);
    expect(seen.every((x) => x === 0)).toBe(true);
    expect(() => new Attention({ numHeads: 6, numKvHeads: 4, headDim: 8, scale: 1 })).toThrow(/num_heads=6 is not divisible by num_kv_heads=4/);
    expect(() => new Attention({ numHeads: 4, numKvHeads: 2, headDim: 8, scale: 1, slidingWindow: 0 })).toThrow(/slidingWindow must be a positive integer or null, got 0/);
    expect(() => new Attention({ numHeads: 4, numKvHeads: 2, headDim: 8, scale: 1, logitsSoftCap: -1 })).toThrow(/logitsSoftCap must be a positive number or null, got -1/);
    // A window reads no block before it; every block inside it must be valid.
    const win = new Attention({ numHeads: d.H, numKvHeads: d.Hk, headDim: d.D, scale: 1, slidingWindow: 2 });
    await expect(win.forward(q, k, v, buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 5, blockTable: [-1, -1, 0] }], 2), cache)).resolves.toBeDefined();
    await expect(win.forward(q, k, v, buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 5, blockTable: [-1, -1, -1] }], 2), cache)).rejects.toThrow(/block 2 is -1, outside the pool/);
    await expect(win.forward(q, k, v, buildAttentionMetadata([{ seqId: 1, queryLen: 1, contextLen: 4, blockTable: [-1, -1, 0] }], 2), cache)).rejects.toThrow(/block 1 is -1, outside the pool/);
    tf.dispose([q, k, v]);
    cache.dispose();
    other.dispose();
  });
});
