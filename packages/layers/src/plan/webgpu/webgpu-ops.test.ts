/**
 * Each op of the WebGPU executor against the tfjs cpu backend (and the tfjs
 * layers themselves: RotaryEmbedding, Attention over a PagedKVCache) on random
 * data, through small hand-built plans: the op's inputs arrive as a pipeline
 * stage's inputs (`inHidden` / `inResidual`) and its result leaves as the
 * stage's outputs. Runs on whatever adapter Dawn finds (Mesa's OpenGL in CI).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { buildAttentionMetadata, positionsOf, type SeqInput } from '../../attention-metadata.js';
import { EmbeddingWeight } from '../../embedding-weight.js';
import { geluTanhAndMul } from '../../gated-mlp.js';
import { LinearWeight } from '../../linear/linear-weight.js';
import { defaultWeightLoader, hostWeight, Parameter } from '../../parameter.js';
import { GgmlLinearMethod, UnquantizedLinearMethod } from '../../quantization/linear-method.js';
import { RotaryEmbedding } from '../../rotary/rotary-embedding.js';
import { randomHost } from '../../test-entries/random.js';
import { PlanBuilder, view, whole, type DevicePlan } from '../builder.js';
import type { PlanStepInput } from '../executor.js';
import type { PlanAct } from '../ops.js';
import { attentionSetup, useTestDevice } from './test-device.js';
import { HostPlanExecutor } from '../host/host-executor.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

const gpu = useTestDevice();

const BS = 4;
const rand = (shape: number[], seed: number, scale = 1) => randomHost(shape, seed, scale).data as Float32Array;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** One sequence of T new tokens (or the given ones), block tables over scattered blocks. */
function stepInput(T: number, extra: Partial<PlanStepInput> = {}, seqs?: SeqInput[]): PlanStepInput {
  const meta = buildAttentionMetadata(seqs ?? [{ seqId: 0, queryLen: T, blockTable: Array.from({ length: Math.ceil(T / BS) }, (_, b) => (b * 5 + 3) % 40) }], BS);
  return {
    tokenIds: new Int32Array(T),
    positions: positionsOf(meta),
    seqs: meta.seqs,
    blockSize: BS,
    sampledRows: Int32Array.from(meta.seqs.map((s) => s.start + s.queryLen - 1)),
    ...extra,
  };
}

async function run(plan: DevicePlan, inputs: PlanStepInput[], maxRows = 64): Promise<Awaited<ReturnType<WebGpuPlanExecutor['step']>>[]> {
  const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows, maxSeqs: 8, maxModelLen: 64 });
  try {
    await ex.initCaches(40, BS);
    const outs = [];
    for (const i of inputs) outs.push(await ex.step(i));
    return outs;
  } finally {
    ex.dispose();
  }
}

function linearWeight(n: number, k: number, format: 'fp32' | 'bf16' | 'q8_0' | 'q4_0', seed: number): LinearWeight {
  const w = new LinearWeight(`w${seed}`, n, k, defaultWeightLoader);
  if (format === 'bf16') w.useMethod(new UnquantizedLinearMethod('bfloat16'));
  if (format === 'q8_0' || format === 'q4_0') w.useMethod(new GgmlLinearMethod(format));
  w.load(hostWeight('w', randomHost([n, k], seed, 0.3)));
  return w;
}

function vectorParam(n: number, seed: number, offset = 0): Parameter {
  const p = new Parameter(`v${seed}`, [n]);
  const h = randomHost([n], seed, 0.5);
  (h.data as Float32Array).forEach((v, i, a) => (a[i] = v + offset));
  p.load(hostWeight('v', h));
  return p;
}

/** The weight-only reference `x · Wᵀ (+ bias)` with W as its storage holds it. */
function dense(x: Float32Array, T: number, w: LinearWeight, bias: Parameter | null): Float32Array {
  return tf.tidy(() => {
    const y = tf.matMul(tf.tensor2d(x, [T, w.inFeatures]), w.denseTransposed());
    return (bias ? tf.add(y, bias.tensor) : y).dataSync() as Float32Array;
  });
}

describe('linear', () => {
  const cases = (['fp32', 'bf16', 'q8_0', 'q4_0'] as const).flatMap((format) =>
    [3, 16, 37].map((T) => ({ format, T, k: format === 'fp32' || format === 'bf16' ? 172 : 96, n: 50 })),
  );
  it.each(cases)('$format, $T rows, k $k → n $n: plain, biased into a column range, accumulated', async ({ format, T, k, n }) => {
    const w = linearWeight(n, k, format, 11);
    const bias = vectorParam(n, 12);
    const b = new PlanBuilder();
    const x = b.act('x', k);
    const y = b.act('y', n);
    const z = b.act('z', n + 7);
    b.op({ kind: 'linear', x: whole(x), out: whole(y), weight: w, bias: null, accumulate: false });
    b.op({ kind: 'linear', x: whole(x), out: view(z, 5, n), weight: w, bias, accumulate: false });
    b.op({ kind: 'linear', x: whole(x), out: view(z, 5, n), weight: w, bias: null, accumulate: true });
    // y ← y + z's range (the accumulate read z's prior contents), then hand both on.
    const plan = b.build(1, { inHidden: x, hidden: y, residual: z });
    const xs = rand([T, k], 13);
    const [o] = await run(plan, [stepInput(T, { hidden: xs })]);
    const plain = dense(xs, T, w, null);
    const biased = dense(xs, T, w, bias);
    expect(maxDiff(o!.hidden!, plain)).toBeLessThan(2e-4);
    const zr = new Float32Array(T * n);
    for (let t = 0; t < T; t++) zr.set(o!.residual!.subarray(t * (n + 7) + 5, t * (n + 7) + 5 + n), t * n);
    expect(maxDiff(zr, biased.map((v, i) => v + plain[i]!))).toBeLessThan(4e-4);
  });

  it.each([3, 37])('x at an unaligned column (%i rows), an embedding as the weight (tied head), bf16', async (T) => {
    const k = 40;
    const n = 77;
    const e = new EmbeddingWeight('emb', n, k, defaultWeightLoader);
    e.useDtype('bfloat16');
    e.load(hostWeight('e', randomHost([n, k], 21, 0.3)));
    const b = new PlanBuilder();
    const x = b.act('x', k + 9);
    const y = b.act('y', n);
    b.op({ kind: 'linear', x: view(x, 3, k), out: whole(y), weight: e, bias: null, accumulate: false });
    const plan = b.build(1, { inHidden: x, hidden: y });
    const xs = rand([T, k + 9], 22);
    const [o] = await run(plan, [stepInput(T, { hidden: xs })]);
    const want = tf.tidy(() => tf.matMul(tf.slice(tf.tensor2d(xs, [T, k + 9]), [0, 3], [T, k]), tf.tensor2d(e.packed!.dequantizeTransposed(), [k, n])).dataSync());
    expect(maxDiff(o!.hidden!, want)).toBeLessThan(2e-4);
  });

  it.each([
    ['silu', 'fp32', 5],
    ['gelu_tanh', 'q8_0', 5],
    ['silu', 'bf16', 33],
    ['gelu_tanh', 'q4_0', 33],
  ] as const)('gate|up with %s (%s, %i rows): fused into the linear, and unfused', async (act, format, T) => {
    const k = 64;
    const I = 36;
    const w = linearWeight(2 * I, k, format, 31);
    const bias = vectorParam(2 * I, 32);
    const b = new PlanBuilder();
    const x = b.act('x', k);
    const gu = b.act('gate_up', 2 * I);
    const y = b.act('y', I);
    const y2 = b.act('y2', I);
    const gu2 = b.act('gate_up2', 2 * I);
    b.op({ kind: 'linear', x: whole(x), out: whole(gu), weight: w, bias, accumulate: false });
    b.op({ kind: 'gatedAct', act, x: whole(gu), out: whole(y) });
    // gu2 is a stage output, so this pair is not fused.
    b.op({ kind: 'linear', x: whole(x), out: whole(gu2), weight: w, bias, accumulate: false });
    b.op({ kind: 'gatedAct', act, x: whole(gu2), out: whole(y2) });
    b.op({ kind: 'add', a: whole(y), b: whole(y2), out: whole(y2) });
    const plan = b.build(1, { inHidden: x, hidden: y2, residual: gu2 });
    const xs = rand([T, k], 33);
    const [o] = await run(plan, [stepInput(T, { hidden: xs })]);
    const g = dense(xs, T, w, bias);
    const want = tf.tidy(() => {
      const t = tf.tensor2d(g, [T, 2 * I]);
      const a = act === 'silu' ? tf.mul(tf.mul(tf.slice(t, [0, 0], [T, I]), tf.sigmoid(tf.slice(t, [0, 0], [T, I]))), tf.slice(t, [0, I], [T, I])) : geluTanhAndMul(t);
      return tf.mul(a, 2).dataSync();
    });
    expect(maxDiff(o!.residual!, g)).toBeLessThan(2e-4);
    expect(maxDiff(o!.hidden!, want)).toBeLessThan(5e-4);
  });
});

describe('a decoder-shaped chain (the executor fuses residual adds, norms into GEMVs, gated activations)', () => {
  it.each([
    ['fp32', 5],
    ['fp32', 20],
    ['q4_0', 3],
    ['bf16', 18],
  ] as const)('%s, %i rows: embed → norm(init) → linear → linear → norm(+res) → gate|up → act → down → norm(+res)', async (format, T) => {
    const H = 64;
    const I = 32;
    const V = 40;
    const emb = new EmbeddingWeight('emb', V, H, defaultWeightLoader);
    emb.load(hostWeight('e', randomHost([V, H], 90, 0.5)));
    const n1 = vectorParam(H, 91, 1);
    const n2 = vectorParam(H, 92, 1);
    const n3 = vectorParam(H, 93, 1);
    const wa = linearWeight(96, H, format, 94);
    const wo = linearWeight(H, 96, format, 95);
    const wgu = linearWeight(2 * I, H, format, 96);
    const wd = linearWeight(H, I, format, 97);
    const bias = vectorParam(H, 98);
    const b = new PlanBuilder();
    const e = b.act('embedding', H);
    const r = b.act('residual', H);
    const nrm = b.act('normed', H);
    const a = b.act('a', 96);
    const o = b.act('o', H);
    const gu = b.act('gate_up', 2 * I);
    const act = b.act('act', I);
    const d = b.act('down', H);
    const f = b.act('final', H);
    const norm = (x: PlanAct, w: Parameter, out: PlanAct, init: boolean) =>
      b.op({ kind: 'rmsNorm', x: whole(x), out: whole(out), weight: w, eps: 1e-6, weightOffset: 0, groupSize: H, residual: whole(r), residualInit: init });
    b.op({ kind: 'embed', table: emb, vocabStart: 0, vocabEnd: V, scale: 1, out: e });
    norm(e, n1, nrm, true);
    b.op({ kind: 'linear', x: whole(nrm), out: whole(a), weight: wa, bias: null, accumulate: false });
    b.op({ kind: 'linear', x: whole(a), out: whole(o), weight: wo, bias, accumulate: false });
    norm(o, n2, nrm, false);
    b.op({ kind: 'linear', x: whole(nrm), out: whole(gu), weight: wgu, bias: null, accumulate: false });
    b.op({ kind: 'gatedAct', act: 'silu', x: whole(gu), out: whole(act) });
    b.op({ kind: 'linear', x: whole(act), out: whole(d), weight: wd, bias: null, accumulate: false });
    norm(d, n3, f, false);
    const plan = b.build(1, { hidden: f, residual: r });
    const ids = Int32Array.from({ length: T }, (_, i) => (i * 7 + 3) % V);
    const [out] = await run(plan, [stepInput(T, { tokenIds: ids })]);
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 64, maxSeqs: 8, maxModelLen: 64 });
    await ex.initCaches(4, BS);
    // Embedded into the residual; o and down accumulate into it; the norms ride in the GEMVs up to 64 rows (in chunks of 16 above 16).
    expect(ex.tags(T, 1)).toEqual(
      T <= 64
        ? ['embed', 'norm_linear', 'linear', 'norm_linear_silu', 'linear', 'rms_norm']
        : ['embed', 'rms_norm', 'norm_linear', 'linear', 'rms_norm', 'norm_linear_silu', 'linear', 'rms_norm'],
    );
    ex.dispose();
    const want = tf.tidy(() => {
      const rms = (x: tf.Tensor, w: Parameter) => tf.mul(w.tensor, tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6))));
      const lin = (x: tf.Tensor, w: LinearWeight) => tf.matMul(x as tf.Tensor2D, w.denseTransposed());
      let res: tf.Tensor = tf.gather(emb.tensor, tf.tensor1d(ids, 'int32'));
      const h1 = lin(rms(res, n1), wa);
      res = tf.add(tf.add(lin(h1, wo), bias.tensor), res);
      const g = lin(rms(res, n2), wgu);
      const gate = tf.slice(g, [0, 0], [T, I]);
      const dn = lin(tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.slice(g, [0, I], [T, I])), wd);
      res = tf.add(dn, res);
      return { f: rms(res, n3).dataSync(), r: res.dataSync() };
    });
    expect(maxDiff(out!.residual!, want.r)).toBeLessThan(2e-4);
    expect(maxDiff(out!.hidden!, want.f)).toBeLessThan(2e-4);
  });
});

describe('bad input gets a clear error', () => {
  it('caches past one binding, a block id outside the pool, a step past maxRows', async () => {
    const b = new PlanBuilder();
    const qkv = b.act('qkv', 48);
    const out = b.act('out', 16);
    b.op({ kind: 'attention', q: view(qkv, 0, 16), k: view(qkv, 16, 16), v: view(qkv, 32, 16), out: whole(out), cacheIndex: b.nextCache(), numHeads: 1, numKvHeads: 1, headDim: 16, vHeadDim: 16, scale: 0.25, logitsSoftCap: null, slidingWindow: null, valueIsKeyPrefix: false });
    const plan = b.build(1, { inHidden: qkv, hidden: out });
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 8, maxSeqs: 2, maxModelLen: 64 });
    try {
      await expect(ex.initCaches(2 ** 28, BS)).rejects.toThrow(/cache 0 K takes \d+ bytes for 268435456 blocks.*fewer blocks/);
      await ex.initCaches(4, BS);
      const step = (seqs: SeqInput[], T: number) => ex.step(stepInput(T, { hidden: new Float32Array(T * 48) }, seqs));
      await expect(step([{ seqId: 7, queryLen: 2, blockTable: [9] }], 2)).rejects.toThrow('sequence 7 block 0 is 9, outside 0..3');
      await expect(step([{ seqId: 0, queryLen: 9, blockTable: [0, 1, 2] }], 9)).rejects.toThrow('9 rows in a step, at most maxRows 8');
    } finally {
      ex.dispose();
    }
  });
});

describe('moe against the host executor', () => {
  it.each([
    ['fp32', 5, 'softmax'],
    ['fp32', 40, 'softmax'],
    ['bf16', 6, 'sigmoid'],
    ['bf16', 37, 'sigmoid'],
  ] as const)('%s (the host is exact there: Q8_0 / Q4_0 are a8 on it), %i rows, %s routing over 5 experts (4 held: one on another EP rank), top 2', async (format, T, scoring) => {
    const H = 64;
    const I = 32;
    const E = 5;
    const b = new PlanBuilder();
    const x = b.act('x', H);
    const logits = b.act('router', E);
    const out = b.act('out', H);
    const gate = linearWeight(E, H, 'fp32', 120);
    b.op({ kind: 'linear', x: whole(x), out: whole(logits), weight: gate, bias: null, accumulate: false });
    const experts = [0, 1, 3, 4].map((id) => ({ id, gateUp: linearWeight(2 * I, H, format, 130 + id), down: linearWeight(H, I, format, 140 + id) }));
    const routing = { topK: 2, scoring, renormalize: scoring === 'sigmoid', method: 'greedy' as const, routedScalingFactor: scoring === 'sigmoid' ? 2.5 : undefined };
    b.op({ kind: 'moe', x: whole(x), logits: whole(logits), out: whole(out), routing, correctionBias: scoring === 'sigmoid' ? vectorParam(E, 121) : null, numExperts: E, experts, exchange: null });
    const plan = b.build(1, { inHidden: x, hidden: out });
    const input = stepInput(T, { hidden: rand([T, H], 122) });
    const [gpu] = await run(plan, [input]);
    const host = new HostPlanExecutor(plan, { isa: 'portable' });
    await host.initCaches(40, BS);
    const want = await host.step(input);
    host.dispose();
    // Expert rows above 16 run the GEMM (a row count from the routing), at or below the GEMV.
    expect(maxDiff(gpu!.hidden!, want.hidden!)).toBeLessThan(2e-4);
    expect(Math.max(...want.hidden!.map(Math.abs))).toBeGreaterThan(0.01);
  });
});

describe('moe grouped routing (device router up to 16 rows, host above) against the host executor', () => {
  it.each([
    [7, 'noaux_tc'],
    [30, 'noaux_tc'],
    [9, 'group_limited_greedy'],
  ] as const)('%i rows, %s over 4 groups of 2 experts (2 kept), top 3, 6 of 8 experts held', async (T, method) => {
    const H = 32;
    const I = 16;
    const E = 8;
    const b = new PlanBuilder();
    const x = b.act('x', H);
    const logits = b.act('router', E);
    const out = b.act('out', H);
    b.op({ kind: 'linear', x: whole(x), out: whole(logits), weight: linearWeight(E, H, 'fp32', 150), bias: null, accumulate: false });
    const experts = [0, 1, 2, 4, 5, 7].map((id) => ({ id, gateUp: linearWeight(2 * I, H, 'fp32', 160 + id), down: linearWeight(H, I, 'fp32', 170 + id) }));
    const noaux = method === 'noaux_tc';
    const routing = { topK: 3, scoring: noaux ? ('sigmoid' as const) : ('softmax' as const), renormalize: noaux, method, nGroup: 4, topkGroup: 2, routedScalingFactor: noaux ? 2.5 : undefined };
    b.op({ kind: 'moe', x: whole(x), logits: whole(logits), out: whole(out), routing, correctionBias: noaux ? vectorParam(E, 151) : null, numExperts: E, experts, exchange: null });
    const plan = b.build(1, { inHidden: x, hidden: out });
    const input = stepInput(T, { hidden: rand([T, H], 152) });
    const [gpu] = await run(plan, [input]);
    const host = new HostPlanExecutor(plan, { isa: 'portable' });
    await host.initCaches(40, BS);
    const want = await host.step(input);
    host.dispose();
    expect(maxDiff(gpu!.hidden!, want.hidden!)).toBeLessThan(1e-4);
  });
});

describe('MLA ops against the host executor', () => {
  it.each([4, 19])('headMatmul over strided heads, copyHeads strided and repeating, roundInput (%i rows)', async (T) => {
    const [H, k, n, xStride, outStride] = [3, 8, 6, 11, 9];
    const wdata = rand([H, k, n], 111);
    const b = new PlanBuilder();
    const x = b.act('x', 2 + H * xStride);
    const out = b.act('out', 1 + H * outStride + 4);
    // Weight-only kernels see their input as it is: roundInput leaves it (as the host does for fp32).
    b.op({ kind: 'roundInput', x: whole(x), weight: linearWeight(4, 32, 'fp32', 112) });
    b.op({ kind: 'headMatmul', x: view(x, 2, (H - 1) * xStride + k), xStride, out: view(out, 1, (H - 1) * outStride + n), outStride, weight: { name: 'W_UK', heads: H, k, n, data: () => wdata } });
    b.op({ kind: 'copyHeads', x: view(x, 2 + k, 3), xStride: 0, out: view(out, 1 + n, (H - 1) * outStride + 3), outStride, heads: H, width: 3 });
    b.op({ kind: 'copyHeads', x: view(x, 0, 2), xStride: 0, out: view(out, 1 + H * outStride, 4), outStride: 2, heads: 2, width: 2 });
    const plan = b.build(1, { inHidden: x, inResidual: out, hidden: out });
    const input = stepInput(T, { hidden: rand([T, x.width], 113), residual: rand([T, out.width], 114) });
    const [gpu] = await run(plan, [input]);
    const host = new HostPlanExecutor(plan, { isa: 'portable' });
    host.initCaches(40, BS);
    const want = await host.step(input);
    host.dispose();
    expect(maxDiff(gpu!.hidden!, want.hidden!)).toBeLessThan(1e-5);
  });
});

describe('embed, rmsNorm, rotary, add, softcap, gather, argmax', () => {
  it.each(['fp32', 'bf16', 'q4_0'] as const)('embed (%s): vocab shard [10, 60) of ids in and out of it, scaled', async (format) => {
    const V = 50;
    const k = 64;
    let table: EmbeddingWeight | LinearWeight;
    if (format === 'q4_0') table = linearWeight(V, k, 'q4_0', 41);
    else {
      table = new EmbeddingWeight('emb', V, k, defaultWeightLoader);
      if (format === 'bf16') table.useDtype('bfloat16');
      table.load(hostWeight('e', randomHost([V, k], 41, 0.3)));
    }
    const b = new PlanBuilder();
    const y = b.act('y', k);
    b.op({ kind: 'embed', table: table as EmbeddingWeight, vocabStart: 10, vocabEnd: 60, scale: 1.5, out: y });
    const plan = b.build(1, { hidden: y });
    const ids = Int32Array.from([10, 59, 3, 60, 33, 10, 0]);
    const [o] = await run(plan, [stepInput(ids.length, { tokenIds: ids })]);
    const rows = format === 'fp32' ? (randomHost([V, k], 41, 0.3).data as Float32Array) : transpose((table.packed ?? (table as LinearWeight).packed)!.dequantizeTransposed(), k, V);
    const want = new Float32Array(ids.length * k);
    ids.forEach((id, t) => {
      if (id >= 10 && id < 60) for (let c = 0; c < k; c++) want[t * k + c] = Math.fround(rows[(id - 10) * k + c]! * 1.5);
    });
    expect(maxDiff(o!.hidden!, want)).toBeLessThan(1e-6);
  });

  it.each([1, 20])('rmsNorm (%i rows): fused residual (init, add), per-head groups with a weight offset, in place', async (T) => {
    const H = 96;
    const w = vectorParam(H, 51);
    const wh = vectorParam(16, 52);
    const b = new PlanBuilder();
    const x = b.act('x', H);
    const res = b.act('res', H);
    const y = b.act('y', H);
    // res ← x, y = norm(res); then res ← y + res, y = norm(res); then per-head (16) norm of y in place, offset 1.
    b.op({ kind: 'rmsNorm', x: whole(x), out: whole(y), weight: w, eps: 1e-5, weightOffset: 0, groupSize: H, residual: whole(res), residualInit: true });
    b.op({ kind: 'rmsNorm', x: whole(y), out: whole(y), weight: w, eps: 1e-5, weightOffset: 0, groupSize: H, residual: whole(res), residualInit: false });
    b.op({ kind: 'rmsNorm', x: view(y, 16, 64), out: view(y, 16, 64), weight: wh, eps: 1e-6, weightOffset: 1, groupSize: 16, residual: null, residualInit: false });
    const plan = b.build(1, { inHidden: x, hidden: y, residual: res });
    const xs = rand([T, H], 53, 2);
    const [o] = await run(plan, [stepInput(T, { hidden: xs })]);
    const want = tf.tidy(() => {
      const norm = (v: tf.Tensor2D, g: tf.Tensor, eps: number) => tf.mul(g, tf.mul(v, tf.rsqrt(tf.add(tf.mean(tf.square(v), -1, true), eps))));
      const x0 = tf.tensor2d(xs, [T, H]);
      const y1 = norm(x0, w.tensor, 1e-5);
      const r2 = tf.add(y1, x0);
      const y2 = norm(r2 as tf.Tensor2D, w.tensor, 1e-5);
      const heads = tf.reshape(tf.slice(y2, [0, 16], [T, 64]), [T * 4, 16]) as tf.Tensor2D;
      const hn = tf.reshape(norm(heads, tf.add(wh.tensor, 1), 1e-6), [T, 64]);
      return { y: tf.concat([tf.slice(y2, [0, 0], [T, 16]), hn, tf.slice(y2, [0, 80], [T, 16])], 1).dataSync(), r: r2.dataSync() };
    });
    expect(maxDiff(o!.hidden!, want.y)).toBeLessThan(1e-4);
    expect(maxDiff(o!.residual!, want.r)).toBeLessThan(1e-5);
  });

  it.each([
    [true, 16, 16],
    [false, 24, 12],
  ] as const)('rotary (neox %s, head %i, rotary dim %i): q and k of a fused qkv at their positions', async (neox, D, rd) => {
    const rope = new RotaryEmbedding({ headSize: D, rotaryDim: rd, maxPosition: 64, base: 10000, isNeoxStyle: neox });
    const H = 3;
    const Hk = 2;
    const W = (H + 2 * Hk) * D;
    const b = new PlanBuilder();
    const qkv = b.act('qkv', W);
    b.op({ kind: 'rotary', x: view(qkv, 0, H * D), heads: H, rope });
    b.op({ kind: 'rotary', x: view(qkv, H * D, Hk * D), heads: Hk, rope });
    const plan = b.build(1, { inHidden: qkv, hidden: qkv });
    const seqs = [
      { seqId: 0, queryLen: 5, contextLen: 30, blockTable: Array.from({ length: 9 }, (_, i) => i) },
      { seqId: 1, queryLen: 1, contextLen: 7, blockTable: [9, 10] },
    ];
    const inp = stepInput(6, {}, seqs);
    const xs = rand([6, W], 61);
    const [o] = await run(plan, [{ ...inp, hidden: xs }]);
    const want = tf.tidy(() => {
      const x = tf.tensor2d(xs, [6, W]);
      const pos = tf.tensor1d(inp.positions, 'int32');
      const q = rope.rotateColumns(pos, x, 0, H);
      const k = rope.rotateColumns(pos, x, H * D, Hk);
      return tf.concat([q, k, tf.slice(x, [0, (H + Hk) * D], [6, Hk * D])], 1).dataSync();
    });
    rope.dispose();
    expect(maxDiff(o!.hidden!, want)).toBeLessThan(1e-5);
  });

  it('a final norm feeding only the sampled-row gather runs on the sampled rows alone', async () => {
    const Wd = 48;
    const w = vectorParam(Wd, 75, 1);
    const b = new PlanBuilder();
    const x = b.act('x', Wd);
    const n = b.act('normed', Wd);
    const l = b.act('logits', Wd, 'sampled');
    b.op({ kind: 'rmsNorm', x: whole(x), out: whole(n), weight: w, eps: 1e-6, weightOffset: 0, groupSize: Wd, residual: null, residualInit: false });
    b.op({ kind: 'gatherSampled', x: whole(n), out: whole(l) });
    const plan = b.build(Wd, { inHidden: x, logits: l });
    const seqs = [
      { seqId: 0, queryLen: 3, blockTable: [0] },
      { seqId: 1, queryLen: 2, blockTable: [1] },
    ];
    const xs = rand([5, Wd], 76, 3);
    const [o] = await run(plan, [stepInput(5, { hidden: xs }, seqs)]);
    const want = tf.tidy(() => {
      const v = tf.gather(tf.tensor2d(xs, [5, Wd]), [2, 4]);
      return tf.mul(w.tensor, tf.mul(v, tf.rsqrt(tf.add(tf.mean(tf.square(v), -1, true), 1e-6)))).dataSync();
    });
    expect(maxDiff(o!.logits!, want)).toBeLessThan(1e-5);
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 8, maxSeqs: 2, maxModelLen: 64 });
    await ex.initCaches(4, BS);
    expect(ex.tags(5, 2)).toEqual(['rms_norm_sampled', 'argmax']);
    ex.dispose();
  });

  it('gatherSampled, softcap, greedy argmax and only the logits rows asked for', async () => {
    const Wd = 70;
    const b = new PlanBuilder();
    const x = b.act('x', Wd);
    const l = b.act('logits', Wd, 'sampled');
    b.op({ kind: 'gatherSampled', x: whole(x), out: whole(l) });
    b.op({ kind: 'softcap', x: whole(l), cap: 2 });
    const plan = b.build(60, { inHidden: x, logits: l });
    const seqs = [
      { seqId: 0, queryLen: 4, blockTable: [0] },
      { seqId: 1, queryLen: 1, contextLen: 3, blockTable: [1] },
      { seqId: 2, queryLen: 2, blockTable: [2] },
    ];
    const xs = rand([7, Wd], 71, 6);
    // Row 6 of x: its largest value past the vocabulary (column 65) is not a candidate.
    xs[6 * Wd + 65] = 100;
    const [o] = await run(plan, [stepInput(7, { hidden: xs, logitsRows: [true, false, true] }, seqs)]);
    const rows = [3, 4, 6];
    rows.forEach((r, s) => {
      const want = Array.from(xs.subarray(r * Wd, (r + 1) * Wd), (v) => 2 * Math.tanh(v / 2));
      let best = 0;
      for (let i = 1; i < 60; i++) if (want[i]! > want[best]!) best = i;
      expect(o!.greedy![s]).toBe(best);
      if (s !== 1) expect(maxDiff(o!.logits!.subarray(s * Wd, (s + 1) * Wd), want)).toBeLessThan(1e-5);
    });
  });
});

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

describe('attention over the paged caches, against Attention + PagedKVCache', () => {
  const configs = [
    { name: 'GQA 4/2, head 16', H: 4, Hk: 2, D: 16, Dv: 16, window: null, cap: null, prefix: false, rope: null },
    { name: 'GQA 8/1, head 12, window 5, soft cap 30', H: 8, Hk: 1, D: 12, Dv: 12, window: 5, cap: 30, prefix: false, rope: null },
    { name: 'MHA 2/2, head 20, v 8', H: 2, Hk: 2, D: 20, Dv: 8, window: null, cap: null, prefix: false, rope: null },
    { name: 'latent cache (V = K prefix), 4/1, head 24, v 16', H: 4, Hk: 1, D: 24, Dv: 16, window: null, cap: null, prefix: true, rope: null },
    // Rotary of q and k just before attention: decode steps rotate, write the cache and attend in one dispatch.
    { name: 'rotary (neox) + GQA 4/2, head 16', H: 4, Hk: 2, D: 16, Dv: 16, window: null, cap: null, prefix: false, rope: { neox: true, dim: 16 } },
    { name: 'rotary (gpt-j, 8 of 12 dims) + GQA 8/1, window 5, soft cap 30', H: 8, Hk: 1, D: 12, Dv: 12, window: 5, cap: 30, prefix: false, rope: { neox: false, dim: 8 } },
    { name: 'rotary (neox, 10 of 20) + MHA 2/2, v 8', H: 2, Hk: 2, D: 20, Dv: 8, window: null, cap: null, prefix: false, rope: { neox: true, dim: 10 } },
    { name: 'rotary (neox) + latent cache, 4/1, head 24, v 16', H: 4, Hk: 1, D: 24, Dv: 16, window: null, cap: null, prefix: true, rope: { neox: true, dim: 24 } },
    // TinyLlama's heads: prefill stages 8 query heads per workgroup with 2 value dims per thread.
    { name: 'GQA 8/1, head 64 (TinyLlama)', H: 8, Hk: 1, D: 64, Dv: 64, window: null, cap: null, prefix: false, rope: null },
    { name: 'rotary (neox) + GQA 8/1, head 64 (TinyLlama)', H: 8, Hk: 1, D: 64, Dv: 64, window: null, cap: null, prefix: false, rope: { neox: true, dim: 64 } },
  ];
  it.each(configs)('$name: prefill of two (21 + 6 rows), batched decode, chunk + decode, decode', async (c) => {
    const { att, cache, b, qkv, out, op, qW, kW, vW, W } = attentionSetup(c, 40, BS);
    const rope = c.rope ? new RotaryEmbedding({ headSize: c.D, rotaryDim: c.rope.dim, maxPosition: 64, base: 10000, isNeoxStyle: c.rope.neox }) : null;
    if (rope) {
      b.op({ kind: 'rotary', x: op.q, heads: c.H, rope });
      b.op({ kind: 'rotary', x: op.k, heads: c.Hk, rope });
    }
    b.op(op);
    const plan = b.build(1, { inHidden: qkv, hidden: out });
    const tables = [Array.from({ length: 8 }, (_, i) => 39 - 3 * i), Array.from({ length: 8 }, (_, i) => 2 + 3 * i)];
    const steps: SeqInput[][] = [
      [
        { seqId: 0, queryLen: 21, blockTable: tables[0] },
        { seqId: 1, queryLen: 6, blockTable: tables[1] },
      ],
      [
        { seqId: 0, queryLen: 1, contextLen: 21, blockTable: tables[0] },
        { seqId: 1, queryLen: 1, contextLen: 6, blockTable: tables[1] },
      ],
      [
        { seqId: 1, queryLen: 5, contextLen: 7, blockTable: tables[1] },
        { seqId: 0, queryLen: 1, contextLen: 22, blockTable: tables[0] },
      ],
      [
        { seqId: 0, queryLen: 1, contextLen: 23, blockTable: tables[0] },
        { seqId: 1, queryLen: 1, contextLen: 12, blockTable: tables[1] },
      ],
    ];
    const inputs = steps.map((s, i) => {
      const meta = buildAttentionMetadata(s, BS);
      const T = meta.seqs.reduce((n, q) => n + q.queryLen, 0);
      return { meta, input: stepInput(T, { hidden: rand([T, W], 80 + i) }, s) };
    });
    const outs = await run(plan, inputs.map((i) => i.input));
    for (const [i, { meta, input }] of inputs.entries()) {
      const T = input.positions.length;
      const x = tf.tensor2d(input.hidden!, [T, W]);
      const pos = tf.tensor1d(input.positions, 'int32');
      const q = (rope ? rope.rotateColumns(pos, x, 0, c.H) : tf.slice(x, [0, 0], [T, qW])) as tf.Tensor2D;
      const k = (rope ? rope.rotateColumns(pos, x, qW, c.Hk) : tf.slice(x, [0, qW], [T, kW])) as tf.Tensor2D;
      const v = c.prefix ? null : (tf.slice(x, [0, qW + kW], [T, vW]) as tf.Tensor2D);
      const y = await att.forward(q, k, v, meta, cache);
      expect(maxDiff(outs[i]!.hidden!, y.dataSync()), `step ${i}`).toBeLessThan(2e-5);
      tf.dispose([x, q, k, y, pos, ...(v ? [v] : [])]);
    }
    if (rope) {
      const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 64, maxSeqs: 8, maxModelLen: 64 });
      await ex.initCaches(4, BS);
      expect(ex.tags(2, 2, true)).toEqual(['attention']);
      expect(ex.tags(6, 2, false)).toEqual(['rope_kv', 'attention']);
      ex.dispose();
      rope.dispose();
    }
  });
});

