/**
 * The prefill GEMM at both K steps (16, 32), and the register-tiled GEMV (wgsl-gemv.ts) at the shapes a device may be tuned to (lanes along K, weight
 * rows per thread, K passes loaded ahead), every weight format, 1 … 7 activation rows, with a fused input RMSNorm, a fused
 * gate|up activation, a bias and accumulation, against the tfjs cpu backend on random data. K is chosen
 * so the lanes' last pass over K is partial and n so the last workgroup has rows past the matrix.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { buildAttentionMetadata, positionsOf } from '../../attention-metadata.js';
import { LinearWeight } from '../../linear/linear-weight.js';
import { defaultWeightLoader, hostWeight, Parameter } from '../../parameter.js';
import { GgmlLinearMethod, UnquantizedLinearMethod } from '../../quantization/linear-method.js';
import { randomHost } from '../../test-entries/random.js';
import { PlanBuilder, whole } from '../builder.js';
import type { PlanStepInput } from '../executor.js';
import { useTestDevice } from './test-device.js';
import type { KernelTuning } from './plan-kernels.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

const gpu = useTestDevice();

type Format = 'fp32' | 'bf16' | 'q8_0' | 'q4_0';

function weight(n: number, k: number, format: Format, seed: number): LinearWeight {
  const w = new LinearWeight(`w${seed}`, n, k, defaultWeightLoader);
  if (format === 'bf16') w.useMethod(new UnquantizedLinearMethod('bfloat16'));
  if (format === 'q8_0' || format === 'q4_0') w.useMethod(new GgmlLinearMethod(format));
  w.load(hostWeight('w', randomHost([n, k], seed, 0.3)));
  return w;
}

function vector(n: number, seed: number, offset = 0): Parameter {
  const p = new Parameter(`v${seed}`, [n]);
  const h = randomHost([n], seed, 0.5);
  (h.data as Float32Array).forEach((v, i, a) => (a[i] = v + offset));
  p.load(hostWeight('v', h));
  return p;
}

function input(T: number, hidden: Float32Array, residual?: Float32Array): PlanStepInput {
  const meta = buildAttentionMetadata([{ seqId: 0, queryLen: T, blockTable: Array.from({ length: Math.ceil(T / 4) }, (_, i) => i % 4) }], 4);
  return { tokenIds: new Int32Array(T), positions: positionsOf(meta), seqs: meta.seqs, blockSize: 4, sampledRows: Int32Array.from([T - 1]), hidden, ...(residual ? { residual } : {}) };
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const shapes: [string, KernelTuning][] = [
  ['default', {}],
  ['L 16, R 4', { gemv: () => ({ L: 16, R: 4 }) }],
  ['L 128, R 2', { gemv: () => ({ L: 128, R: 2 }) }],
  ['L 32, R 1 (gate|up 2)', { gemv: (_m, gu) => ({ L: 32, R: gu ? 2 : 1 }) }],
  ['L 64, R 8', { gemv: () => ({ L: 64, R: 8 }) }],
  // Loads of several K passes in flight (U): the last pass partial, and U above the passes there are.
  ['L 16, R 2, U 2', { gemv: () => ({ L: 16, R: 2, U: 2 }) }],
  ['L 32, R 4, U 3', { gemv: () => ({ L: 32, R: 4, U: 3 }) }],
  // The other defaults of gemvShape (picked by matrix size on the device; here every linear takes them).
  ['L 16, R 8', { gemv: () => ({ L: 16, R: 8 }) }],
  ['L 32, R 8', { gemv: () => ({ L: 32, R: 8 }) }],
  ['L 128, R 4', { gemv: () => ({ L: 128, R: 4 }) }],
];

describe('tiled GEMV against tfjs', () => {
  const cases = (['fp32', 'bf16', 'q8_0', 'q4_0'] as const).flatMap((format) => [
    ...shapes.map(([name, tuning], i) => ({ format, name, tuning, T: [1, 2, 7, 1, 5, 1, 11, 13, 6, 2][i]! })),
    // Above 16 rows: chunks of 16 rows side by side (the last one partial), up to 64.
    { format, name: 'in chunks (gemvMaxRows 64)', tuning: { gemvMaxRows: 64 } as KernelTuning, T: format === 'q4_0' ? 64 : 37 },
    // The step's kernels in three command buffers, submitted one by one.
    { format, name: 'default, a command buffer per kernel (submitSplit [1, 1])', tuning: { submitSplit: [1, 1] } as KernelTuning, T: 3 },
    // Chunks of 8 rows (the default) from 9 rows on (the last one partial), and chunks of 16.
    { format, name: 'default, two chunks of 8', tuning: {} as KernelTuning, T: 13 },
    { format, name: 'chunks of 16 (gemvChunk 16)', tuning: { gemvChunk: 16 } as KernelTuning, T: 37 },
    // By default a quantized gate|up runs the GEMM above 32 rows (its input norm then a kernel of its own; the tag stays).
    ...(format === 'q8_0' || format === 'q4_0' ? [{ format, name: 'default, gate|up on the GEMM above 32 rows', tuning: {} as KernelTuning, T: 37 }] : []),
    // The decoders with int → float conversions (the device A/B against the exponent trick).
    ...(format === 'q8_0' || format === 'q4_0' ? [{ format, name: 'weightDecode convert', tuning: { weightDecode: 'convert' } as KernelTuning, T: 2 }] : []),
  ]);
  it.each(cases)('$format, $name, $T rows: norm → linear (+bias), norm → gate|up·silu, linear accumulated', async ({ format, tuning, T }) => {
    // k: whole blocks for Q8_0 / Q4_0, and a partial last pass of the lanes over K for every shape above.
    const k = format === 'fp32' || format === 'bf16' ? 300 : 288;
    const n = 37;
    const I = 29;
    const wq = weight(n, k, format, 41);
    const wgu = weight(2 * I, k, format, 42);
    const wd = weight(k, I, format === 'q8_0' || format === 'q4_0' ? 'bf16' : format, 43);
    const bias = vector(n, 44);
    const gn = vector(k, 45, 1);
    const b = new PlanBuilder();
    const x = b.act('x', k);
    const h = b.act('h', k);
    const y = b.act('y', n);
    const gu = b.act('gu', 2 * I);
    const a = b.act('a', I);
    b.op({ kind: 'rmsNorm', x: whole(x), out: whole(h), weight: gn, eps: 1e-5, residual: null, residualInit: false, groupSize: k, weightOffset: 0 });
    b.op({ kind: 'linear', x: whole(h), out: whole(y), weight: wq, bias, accumulate: false });
    b.op({ kind: 'rmsNorm', x: whole(x), out: whole(h), weight: gn, eps: 1e-5, residual: null, residualInit: false, groupSize: k, weightOffset: 0 });
    b.op({ kind: 'linear', x: whole(h), out: whole(gu), weight: wgu, bias: null, accumulate: false });
    b.op({ kind: 'gatedAct', act: 'silu', x: whole(gu), out: whole(a) });
    b.op({ kind: 'linear', x: whole(a), out: whole(x), weight: wd, bias: null, accumulate: true });
    const plan = b.build(1, { inHidden: x, hidden: y, residual: x });
    const xs = randomHost([T, k], 46).data as Float32Array;
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 64, maxSeqs: 4, maxModelLen: 68, tuning });
    try {
      await ex.initCaches(4, 4);
      // The norms ride in the GEMVs; gate|up and its activation are one kernel.
      const gemmGateUp = (format === 'q8_0' || format === 'q4_0') && T > 32 && tuning.gemvMaxRows === undefined;
      expect(ex.tags(T, 1)).toEqual(gemmGateUp ? ['norm_linear', 'rms_norm', 'norm_linear_silu', 'linear'] : ['norm_linear', 'norm_linear_silu', 'linear']);
      const o = await ex.step(input(T, xs));
      const want = tf.tidy(() => {
        const xt = tf.tensor2d(xs, [T, k]);
        const hn = tf.mul(tf.mul(xt, tf.rsqrt(tf.add(tf.mean(tf.square(xt), -1, true), 1e-5))), gn.tensor);
        const yv = tf.add(tf.matMul(hn, wq.denseTransposed()), bias.tensor);
        const g = tf.matMul(hn, wgu.denseTransposed());
        const gate = tf.slice(g, [0, 0], [T, I]);
        const av = tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.slice(g, [0, I], [T, I]));
        const xn = tf.add(xt, tf.matMul(av, wd.denseTransposed()));
        return [yv.dataSync(), xn.dataSync()];
      });
      expect(worst(o.hidden!, want[0]!)).toBeLessThan(3e-4);
      expect(worst(o.residual!, want[1]!)).toBeLessThan(3e-4);
    } finally {
      ex.dispose();
    }
  });
});

describe('prefill GEMM, K steps of 16 and 32, against tfjs', () => {
  it.each((['fp32', 'bf16', 'q8_0', 'q4_0'] as const).flatMap((format) => [16, 32].map((gemmK) => ({ format, gemmK: gemmK as 16 | 32 }))))('$format, K step $gemmK: 70 rows through norm, gate|up·silu (bias) and an accumulated linear', async ({ format, gemmK }) => {
    const k = format === 'fp32' || format === 'bf16' ? 200 : 224;
    const I = 45;
    const T = 70;
    const wgu = weight(2 * I, k, format, 51);
    const wd = weight(k, I, format === 'q8_0' || format === 'q4_0' ? 'fp32' : format, 52);
    const bias = vector(2 * I, 53);
    const gn = vector(k, 55, 1);
    const b = new PlanBuilder();
    const x = b.act('x', k);
    const h = b.act('h', k);
    const gu = b.act('gu', 2 * I);
    const a = b.act('a', I);
    // Above 64 rows the norm is its own kernel and the GEMM reads what it wrote.
    b.op({ kind: 'rmsNorm', x: whole(x), out: whole(h), weight: gn, eps: 1e-5, residual: null, residualInit: false, groupSize: k, weightOffset: 0 });
    b.op({ kind: 'linear', x: whole(h), out: whole(gu), weight: wgu, bias, accumulate: false });
    b.op({ kind: 'gatedAct', act: 'silu', x: whole(gu), out: whole(a) });
    b.op({ kind: 'linear', x: whole(a), out: whole(x), weight: wd, bias: null, accumulate: true });
    const plan = b.build(1, { inHidden: x, hidden: a, residual: x });
    const xs = randomHost([T, k], 54).data as Float32Array;
    const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: 96, maxSeqs: 4, maxModelLen: 100, tuning: { gemmK } });
    try {
      await ex.initCaches(4, 4);
      expect(ex.tags(T, 1)).toEqual(['rms_norm', 'norm_linear_silu', 'linear']);
      const meta = buildAttentionMetadata([{ seqId: 0, queryLen: T, blockTable: Array.from({ length: 18 }, (_, i) => i % 4) }], 4);
      const o = await ex.step({ tokenIds: new Int32Array(T), positions: positionsOf(meta), seqs: meta.seqs, blockSize: 4, sampledRows: Int32Array.from([T - 1]), hidden: xs });
      const want = tf.tidy(() => {
        const xt = tf.tensor2d(xs, [T, k]);
        const hn = tf.mul(tf.mul(xt, tf.rsqrt(tf.add(tf.mean(tf.square(xt), -1, true), 1e-5))), gn.tensor);
        const g = tf.add(tf.matMul(hn, wgu.denseTransposed()), bias.tensor);
        const gate = tf.slice(g, [0, 0], [T, I]);
        const av = tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.slice(g, [0, I], [T, I]));
        return [av.dataSync(), tf.add(xt, tf.matMul(av, wd.denseTransposed())).dataSync()];
      });
      expect(worst(o.hidden!, want[0]!)).toBeLessThan(3e-4);
      expect(worst(o.residual!, want[1]!)).toBeLessThan(3e-4);
    } finally {
      ex.dispose();
    }
  });
});
