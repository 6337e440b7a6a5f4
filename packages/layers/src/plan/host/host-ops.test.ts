/**
 * The host executor op by op against the tfjs layers on random data: small
 * plans made with PlanBuilder (the op's input arrives as the stage's input
 * hidden, its result leaves as the output hidden), run on the native path and
 * the portable one. The tfjs side uses @weft/cpu-kernels for packed weights
 * (registered for the cpu backend here), as the tensorflow / wasm ranks do.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { availableIsas, cpuKernels } from '@weft/cpu-kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAttentionMetadata, type SeqInput } from '../../attention-metadata.js';
import { Attention } from '../../attention.js';
import { EmbeddingWeight } from '../../embedding-weight.js';
import { geluTanhAndMul } from '../../gated-mlp.js';
import { siluAndMulOp } from '../../kernels/index.js';
import { LinearWeight } from '../../linear/linear-weight.js';
import { PagedKVCache } from '../../paged-kv-cache.js';
import { hostWeight, Parameter } from '../../parameter.js';
import { GgmlLinearMethod, UnquantizedLinearMethod } from '../../quantization/linear-method.js';
import { registerQuantKernels, unregisterQuantKernels } from '../../quantization/quant-kernels.js';
import { RMSNorm } from '../../rms-norm.js';
import { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import { randomHost, randomIds } from '../../test-entries/random.js';
import { PlanBuilder, view, whole } from '../builder.js';
import { unsupportedOps } from '../executor.js';
import type { PlanAct, PlanOp } from '../ops.js';
import { HostPlanExecutor } from './host-executor.js';
import { HOST_CAPS } from './op-table.js';

const FORMATS = ['fp32', 'bf16', 'q8_0', 'q4_0'] as const;
type Format = (typeof FORMATS)[number];

function linearWeight(name: string, n: number, k: number, format: Format, seed: number): LinearWeight {
  const w = new LinearWeight(name, n, k, (p, h) => p.set(h.read(), h.name));
  if (format !== 'fp32') w.useMethod(format === 'bf16' ? new UnquantizedLinearMethod('bfloat16') : new GgmlLinearMethod(format));
  w.load(hostWeight(name, randomHost([n, k], seed, 0.3)));
  return w;
}

function vector(name: string, n: number, seed: number, base = 0): Parameter {
  const p = new Parameter(name, [n]);
  const h = randomHost([n], seed, 0.5);
  p.set({ ...h, data: h.data.map((v) => v + base) }, name);
  return p;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A plan whose stage input is `x` and whose output is `out` (the ops between are the test's). */
function planOf(b: PlanBuilder, x: PlanAct, out: PlanAct, residual: PlanAct | null = null) {
  return b.build(1, { hidden: out, inHidden: x, residual, inResidual: residual });
}

const seqsOf = (T: number) => buildAttentionMetadata([{ seqId: 0, queryLen: T }]).seqs;

async function runRows(ex: HostPlanExecutor, x: Float32Array, T: number, residual?: Float32Array) {
  return ex.step({ tokenIds: new Int32Array(T), positions: Int32Array.from({ length: T }, (_, i) => i), seqs: seqsOf(T), blockSize: 16, sampledRows: new Int32Array(0), hidden: x, residual });
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  const k = cpuKernels();
  registerQuantKernels(['cpu'], { activations: { q8_0: 'a8', q4_0: 'a8', bf16: 'exact' }, gemmQ8_0: k.gemmQ8_0, gemmQ4_0: k.gemmQ4_0, gemmBf16: k.gemmBf16 });
});
afterAll(() => unregisterQuantKernels(['cpu']));

describe.each(availableIsas().filter((isa, i) => i === 0 || isa === 'portable'))('host executor ops (%s)', (isa) => {
  it.each(FORMATS)('linear %s: bias, accumulate into a column view, against the weight method', async (format) => {
    const T = 5, k = 64, n = 48;
    const w1 = linearWeight('a.weight', n, k, format, 1), w2 = linearWeight('b.weight', n, k, format, 2);
    const bias = vector('b.bias', n, 3);
    const b = new PlanBuilder();
    const x = b.act('x', k), out = b.act('out', n + 8);
    const o = view(out, 8, n);
    b.op({ kind: 'linear', x: whole(x), out: o, weight: w1, bias: null, accumulate: false });
    b.op({ kind: 'linear', x: whole(x), out: o, weight: w2, bias, accumulate: true });
    const ex = new HostPlanExecutor(planOf(b, x, out), { isa, threads: 2 });
    const xs = randomHost([T, k], 4).data as Float32Array;
    const got = (await runRows(ex, xs, T)).hidden!;
    const ref = tf.tidy(() => {
      const xt = tf.tensor2d(xs, [T, k]);
      return tf.add(w1.apply(xt), w2.apply(xt, bias.tensor)).arraySync() as number[][];
    });
    const cols = Array.from({ length: T }, (_, t) => Array.from(got.subarray(t * (n + 8) + 8, (t + 1) * (n + 8))));
    expect(maxAbs(cols.flat(), ref.flat())).toBeLessThan(format === 'fp32' || format === 'bf16' ? 1e-5 : 2e-5);
  });

  it('rmsNorm: fused residual (init and add), per-head groups, weight offset, in place', async () => {
    const T = 3, H = 32;
    const norm = new RMSNorm('n', H, 1e-5);
    norm.weight.load(hostWeight('n.weight', randomHost([H], 5)));
    const head = new RMSNorm('h', 8, 1e-6);
    head.weight.load(hostWeight('h.weight', randomHost([8], 6)));
    const b = new PlanBuilder();
    const x = b.act('x', H), res = b.act('res', H), out = b.act('out', H);
    b.op({ kind: 'rmsNorm', x: whole(x), out: whole(out), weight: norm.weight, eps: 1e-5, weightOffset: 0, groupSize: H, residual: whole(res), residualInit: true });
    b.op({ kind: 'rmsNorm', x: whole(out), out: whole(out), weight: norm.weight, eps: 1e-5, weightOffset: 0, groupSize: H, residual: whole(res), residualInit: false });
    b.op({ kind: 'rmsNorm', x: whole(out), out: whole(out), weight: head.weight, eps: 1e-6, weightOffset: 1, groupSize: 8, residual: null, residualInit: false });
    const ex = new HostPlanExecutor(b.build(1, { hidden: out, inHidden: x, residual: res }), { isa });
    const xs = randomHost([T, H], 7, 2).data as Float32Array;
    const got = await runRows(ex, xs, T);
    const offset = new RMSNorm('o', 8, 1e-6);
    offset.weight.set({ shape: [8], dtype: 'float32', data: (head.weight.tensor.dataSync() as Float32Array).map((v) => v + 1) }, 'o');
    const [want, wantRes] = tf.tidy(() => {
      const x0 = tf.tensor2d(xs, [T, H]);
      const [n1, r1] = norm.forwardInput(x0, null);
      const [n2, r2] = norm.forwardResidual(n1, r1);
      const n3 = tf.reshape(offset.forward(tf.reshape(n2, [T * 4, 8]) as tf.Tensor2D), [T, H]);
      return [n3.dataSync(), r2.dataSync()];
    });
    expect(maxAbs(got.hidden!, want)).toBeLessThan(1e-5);
    expect(maxAbs(got.residual!, wantRes)).toBeLessThan(1e-6);
  });

  it.each([
    { name: 'neox, whole head', neox: true, rotaryDim: 16, scaling: null },
    { name: 'gpt-j pairs, partial rotary', neox: false, rotaryDim: 8, scaling: null },
    { name: 'neox, yarn (attention scaling)', neox: true, rotaryDim: 16, scaling: { type: 'yarn' as const, factor: 4, originalMaxPositionEmbeddings: 64 } },
  ])('rotary $name at the step positions, in place on the q and k columns', async ({ neox, rotaryDim, scaling }) => {
    const rope = new RotaryEmbedding({ headSize: 16, rotaryDim, maxPosition: 512, base: 10000, isNeoxStyle: neox, scaling });
    const T = 4, W = 3 * 16 + 2 * 16;
    const b = new PlanBuilder();
    const x = b.act('qkv', W);
    b.op({ kind: 'rotary', x: view(x, 0, 48), heads: 3, rope });
    b.op({ kind: 'rotary', x: view(x, 48, 16), heads: 1, rope });
    const ex = new HostPlanExecutor(planOf(b, x, x), { isa });
    const xs = randomHost([T, W], 8).data as Float32Array;
    const positions = Int32Array.of(7, 8, 300, 9);
    const seqs = buildAttentionMetadata([{ seqId: 0, queryLen: 2, contextLen: 7 }, { seqId: 1, queryLen: 1, contextLen: 300 }, { seqId: 2, queryLen: 1, contextLen: 9 }]).seqs;
    const got = (await ex.step({ tokenIds: new Int32Array(T), positions, seqs, blockSize: 16, sampledRows: new Int32Array(0), hidden: xs })).hidden!;
    const want = tf.tidy(() => {
      const src = tf.tensor2d(xs, [T, W]);
      const pos = tf.tensor1d(positions, 'int32');
      return tf.concat([rope.rotateColumns(pos, src, 0, 3), rope.rotateColumns(pos, src, 48, 1), tf.slice(src, [0, 64], [T, W - 64])], 1).dataSync();
    });
    expect(maxAbs(got, want)).toBeLessThan(1e-5);
    rope.dispose();
  });

  it('gated SiLU and GELU-tanh, add, soft cap against the tfjs ops', async () => {
    const T = 3, I = 24;
    const b = new PlanBuilder();
    const x = b.act('gateUp', 2 * I), out = b.act('out', 3 * I);
    b.op({ kind: 'gatedAct', act: 'silu', x: whole(x), out: view(out, 0, I) });
    b.op({ kind: 'gatedAct', act: 'gelu_tanh', x: whole(x), out: view(out, I, I) });
    b.op({ kind: 'add', a: view(out, 0, I), b: view(out, I, I), out: view(out, 2 * I, I) });
    b.op({ kind: 'softcap', x: view(out, 2 * I, I), cap: 0.7 });
    const ex = new HostPlanExecutor(planOf(b, x, out), { isa });
    const xs = randomHost([T, 2 * I], 9, 3).data as Float32Array;
    const got = (await runRows(ex, xs, T)).hidden!;
    const want = tf.tidy(() => {
      const g = tf.tensor2d(xs, [T, 2 * I]);
      const s = siluAndMulOp(g), e = geluTanhAndMul(g);
      return tf.concat([s, e, tf.mul(tf.tanh(tf.div(tf.add(s, e), 0.7)), 0.7)], 1).dataSync();
    });
    expect(maxAbs(got, want)).toBeLessThan(1e-5);
  });

  it.each(['fp32', 'bf16'] as const)('embed (%s, a vocab shard, scaled) → gatherSampled → tied LM head', async (dtype) => {
    const V = 40, H = 32, T = 6;
    const table = new EmbeddingWeight('embed.weight', V / 2, H, (p, h) => p.set(h.read(), h.name));
    table.useDtype(dtype === 'bf16' ? 'bfloat16' : 'float32');
    table.load(hostWeight('embed.weight', randomHost([V / 2, H], 10)));
    const b = new PlanBuilder();
    const hidden = b.act('hidden', H), sampled = b.act('sampled', H, 'sampled'), logits = b.act('logits', V / 2, 'sampled');
    b.op({ kind: 'embed', table, vocabStart: V / 2, vocabEnd: V, scale: 1.5, out: hidden });
    b.op({ kind: 'gatherSampled', x: whole(hidden), out: whole(sampled) });
    b.op({ kind: 'linear', x: whole(sampled), out: whole(logits), weight: table, bias: null, accumulate: false });
    const ex = new HostPlanExecutor(b.build(V / 2, { logits }), { isa });
    const ids = randomIds(T, V, 11);
    const sampledRows = Int32Array.of(5, 1, 2);
    const got = await ex.step({ tokenIds: ids, positions: new Int32Array(T), seqs: buildAttentionMetadata([0, 1, 2, 3, 4, 5].map((i) => ({ seqId: i, queryLen: 1 }))).seqs, blockSize: 16, sampledRows });
    const rows = dtype === 'bf16' ? null : (table.tensor.dataSync() as Float32Array);
    const w = rows ?? Float32Array.from(table.packed!.data, (u) => new Float32Array(Uint32Array.of(u << 16).buffer)[0]!);
    const want = tf.tidy(() => {
      const e = tf.tensor2d(Array.from(ids, (id) => (id >= V / 2 ? Array.from(w.subarray((id - V / 2) * H, (id - V / 2 + 1) * H), (v) => Math.fround(v * 1.5)) : new Array(H).fill(0))));
      return tf.matMul(tf.gather(e, Array.from(sampledRows)), tf.tensor2d(w, [V / 2, H]), false, true).dataSync();
    });
    expect(got.logits!.length).toBe(3 * (V / 2));
    expect(maxAbs(got.logits!, want)).toBeLessThan(1e-5);
  });
});

/**
 * Paged attention over three steps (two prefills, then a decode, a continuing chunk and a new sequence sharing
 * a prefix block) against the tfjs Attention on a PagedKVCache fed the same block tables.
 */
describe.each(availableIsas().filter((isa, i) => i === 0 || isa === 'portable'))('host executor attention (%s)', (isa) => {
  it.each([
    { name: 'GQA', H: 4, Hk: 2, D: 16, Dv: 16, window: null, cap: null, latent: false },
    { name: 'sliding window 5 with a soft cap', H: 2, Hk: 1, D: 8, Dv: 8, window: 5, cap: 20, latent: false },
    { name: 'MLA latent cache (V = K prefix)', H: 3, Hk: 1, D: 24, Dv: 16, window: null, cap: null, latent: true },
  ])('$name', async ({ H, Hk, D, Dv, window, cap, latent }) => {
    const bs = 4, numBlocks = 16, scale = 0.25;
    const attn = new Attention({ numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv, scale, slidingWindow: window, logitsSoftCap: cap, valueIsKeyPrefix: latent });
    const cache = new PagedKVCache({ ...attn.kvCacheSpec, numBlocks, blockSize: bs });
    const Wq = H * D, Wk = Hk * D, Wv = latent ? 0 : Hk * Dv;
    const b = new PlanBuilder();
    const qkv = b.act('qkv', Wq + Wk + Wv), out = b.act('out', H * Dv);
    const op: PlanOp = {
      kind: 'attention', q: view(qkv, 0, Wq), k: view(qkv, Wq, Wk), v: latent ? null : view(qkv, Wq + Wk, Wv), out: whole(out), cacheIndex: b.nextCache(),
      numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv, scale, logitsSoftCap: cap, slidingWindow: window, valueIsKeyPrefix: latent,
    };
    b.op(op);
    const ex = new HostPlanExecutor(planOf(b, qkv, out), { isa, threads: 2 });
    expect(ex.initCaches(numBlocks, bs)).toBe(numBlocks * bs * Hk * (D + (latent ? 0 : Dv)) * 4);
    const steps: SeqInput[][] = [
      [{ seqId: 1, queryLen: 6, blockTable: [3, 7] }, { seqId: 2, queryLen: 9, blockTable: [0, 1, 2] }],
      [{ seqId: 1, queryLen: 1, contextLen: 6, blockTable: [3, 7] }, { seqId: 2, queryLen: 3, contextLen: 9, blockTable: [0, 1, 2] }, { seqId: 3, queryLen: 2, contextLen: 4, blockTable: [3, 9] }],
      [{ seqId: 1, queryLen: 1, contextLen: 7, blockTable: [3, 7] }, { seqId: 2, queryLen: 1, contextLen: 12, blockTable: [0, 1, 2, 5] }],
    ];
    // With a window every layer has, the engine frees blocks wholly behind it (−1 in the table): never read.
    if (window !== null) steps.push([{ seqId: 2, queryLen: 1, contextLen: 13, blockTable: [-1, -1, 2, 5] }]);
    let seed = 20;
    for (const seqs of steps) {
      const meta = buildAttentionMetadata(seqs, bs);
      const T = seqs.reduce((a, s) => a + s.queryLen, 0);
      const xs = randomHost([T, Wq + Wk + Wv], seed++).data as Float32Array;
      const positions = Int32Array.from(meta.seqs.flatMap((s) => Array.from({ length: s.queryLen }, (_, i) => s.contextLen + i)));
      const got = (await ex.step({ tokenIds: new Int32Array(T), positions, seqs: meta.seqs, blockSize: bs, sampledRows: new Int32Array(0), hidden: xs })).hidden!;
      const x = tf.tensor2d(xs, [T, Wq + Wk + Wv]);
      const [q, k, v] = tf.split(x, latent ? [Wq, Wk] : [Wq, Wk, Wv], 1) as tf.Tensor2D[];
      const want = await attn.forward(q!, k!, latent ? null : v!, meta, cache);
      expect(maxAbs(got, want.dataSync())).toBeLessThan(2e-6);
      tf.dispose([x, q!, k!, v!, want]);
    }
    // a block id outside the pool: named with its sequence, before anything is written
    const bad = buildAttentionMetadata([{ seqId: 4, queryLen: 1, contextLen: 4, blockTable: [0, numBlocks] }], bs);
    await expect(ex.step({ tokenIds: new Int32Array(1), positions: Int32Array.of(4), seqs: bad.seqs, blockSize: bs, sampledRows: new Int32Array(0), hidden: new Float32Array(Wq + Wk + Wv) })).rejects.toThrow(
      /sequence 4 block 1 is 16, outside the pool of 16 blocks/,
    );
    // a step longer than its block table covers
    const long = buildAttentionMetadata([{ seqId: 5, queryLen: 9, blockTable: [0, 1] }], bs);
    await expect(ex.step({ tokenIds: new Int32Array(9), positions: Int32Array.from({ length: 9 }, (_, i) => i), seqs: long.seqs, blockSize: bs, sampledRows: new Int32Array(0), hidden: new Float32Array(9 * (Wq + Wk + Wv)) })).rejects.toThrow(
      /sequence 5 has 9 tokens, which need 3 blocks of 4, but its block table has 2/,
    );
  });
});

describe('host executor refusals', () => {
  it('names an op kind it lacks, a step before its caches and one after dispose', async () => {
    const b = new PlanBuilder();
    const x = b.act('x', 8);
    b.op({ kind: 'fancyNewOp', x: whole(x) } as unknown as PlanOp);
    const plan = planOf(b, x, x);
    expect(unsupportedOps(plan, HOST_CAPS)).toBe("the host executor has no 'fancyNewOp' op");
    expect(() => new HostPlanExecutor(plan)).toThrow(/no 'fancyNewOp' op/);
    const b2 = new PlanBuilder();
    const y = b2.act('y', 8);
    b2.op({ kind: 'attention', q: whole(y), k: whole(y), v: whole(y), out: whole(y), cacheIndex: b2.nextCache(), numHeads: 1, numKvHeads: 1, headDim: 8, vHeadDim: 8, scale: 1, logitsSoftCap: null, slidingWindow: null, valueIsKeyPrefix: false });
    const ex = new HostPlanExecutor(planOf(b2, y, y));
    await expect(runRows(ex, new Float32Array(8), 1)).rejects.toThrow(/step before initCaches/);
    ex.dispose();
    await expect(runRows(ex, new Float32Array(8), 1)).rejects.toThrow(/step after dispose/);
  });
});
