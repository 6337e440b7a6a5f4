/**
 * The host `moe` op against the tfjs FusedMoE on random weights: routing
 * (ids exactly, weights to fp32 rounding) for every routing method, and the
 * experts' weighted sum in fp32, bf16, q8_0 and q4_0 on @weft/cpu-kernels
 * (native and portable; the tfjs side multiplies packed weights with the
 * same a8 gemms, registered for the cpu backend), whole and split over EP ranks.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { GroupCoordinator, SoloCommunicator } from '@weft/comm';
import { availableIsas, cpuKernels, planKernels, type PlanKernels } from '@weft/cpu-kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { determineExpertMap } from '../../moe/expert-map.js';
import { FUSED_MOE_STACKED_PARAMS, FusedMoE } from '../../moe/fused-moe.js';
import { RoutedExperts } from '../../moe/routed-experts.js';
import { selectExperts } from '../../moe/router.js';
import { caseHidden, caseLogits, memoryCheckpoint, moeCheckpoint, PREFIX, type MoECase } from '../../moe/test-entries/reference.js';
import { registerQuantKernels, unregisterQuantKernels } from '../../quantization/quant-kernels.js';
import { QuantizationConfig } from '../../quantization/quantization-config.js';
import { loadWeights } from '../../weight-loading.js';
import { PlanBuilder, whole } from '../builder.js';
import type { MoeOp, PlanAct } from '../ops.js';
import { vectorData } from '../weights.js';
import { moeHost, routeHost } from './moe.js';
import { hostMatrix } from './upload.js';

const solo = (kind: string) => new GroupCoordinator({ rank: 0, ranks: [0], uniqueName: `${kind}:0`, cpuGroup: new SoloCommunicator(`${kind}:0`) });

const v3: MoECase = {
  name: 'v3', H: 64, I: 32, E: 8, topK: 3, scoring: 'sigmoid', method: 'noaux_tc', nGroup: 4, topkGroup: 2,
  renormalize: true, scale: 2.5, bias: true, nShared: 0, useGate: false, tokens: [11],
};
const v2: MoECase = {
  name: 'v2', H: 64, I: 32, E: 16, topK: 4, scoring: 'softmax', method: 'greedy', renormalize: false, scale: 1,
  bias: false, nShared: 0, useGate: false, tokens: [9],
};
const v2Grouped: MoECase = {
  name: 'v2-grouped', H: 64, I: 32, E: 16, topK: 3, scoring: 'softmax', method: 'group_limited_greedy', nGroup: 4, topkGroup: 2,
  renormalize: false, scale: 16, bias: false, nShared: 0, useGate: false, tokens: [6],
};
const mixtral: MoECase = {
  name: 'mixtral', H: 64, I: 32, E: 8, topK: 2, scoring: 'softmax', renormalize: true, bias: false, nShared: 0, useGate: false, tokens: [13],
};
const CASES = [v3, v2, v2Grouped, mixtral];

function build(c: MoECase, format: 'fp32' | 'bf16' | 'q8_0' | 'q4_0'): FusedMoE {
  const moe = new FusedMoE({
    prefix: PREFIX, hiddenSize: c.H, intermediateSize: c.I, numExperts: c.E,
    routing: { topK: c.topK, scoring: c.scoring, method: c.method, nGroup: c.nGroup, topkGroup: c.topkGroup, renormalize: c.renormalize, routedScalingFactor: c.scale },
    correctionBias: c.bias, numSharedExperts: c.nShared, tp: solo('tp'),
  });
  const quantization =
    format === 'fp32' ? undefined : new QuantizationConfig(format === 'bf16' ? { dtype: 'bfloat16', quantization: null } : { dtype: 'float32', quantization: format });
  loadWeights({ params: moe.parameters(), checkpoint: memoryCheckpoint(moeCheckpoint(c)), stacked: [...FUSED_MOE_STACKED_PARAMS], quantization });
  return moe;
}

/** Record the block's op (its gate skipped: the case's logits go in) and run it on host buffers. */
function runOp(moe: FusedMoE, c: MoECase, kernels: PlanKernels, experts = moe.experts.planExperts()): Float32Array {
  const T = c.tokens[0]!;
  const b = new PlanBuilder();
  const x = b.act('x', c.H);
  const logits = b.act('logits', c.E);
  // The op writes a view inside a wider buffer: its columns only.
  const out = b.act('out', c.H + 5);
  const op: MoeOp = {
    kind: 'moe', x: whole(x), logits: whole(logits), out: { act: out, col: 3, width: c.H },
    routing: moe.routing, correctionBias: moe.correctionBias, numExperts: c.E, experts, exchange: null,
  };
  const bufs = new Map<PlanAct, Float32Array>([
    [x, caseHidden(c, 0).data as Float32Array],
    [logits, caseLogits(c, 0).data as Float32Array],
    [out, new Float32Array(T * (c.H + 5)).fill(7)],
  ]);
  const held = experts.map((e) => ({ id: e.id, gateUp: hostMatrix(e.gateUp), down: hostMatrix(e.down) }));
  moeHost(op, T, (a) => bufs.get(a)!, moe.correctionBias ? vectorData(moe.correctionBias) : null, held, kernels);
  const o = bufs.get(out)!;
  for (let t = 0; t < T; t++) {
    for (const col of [0, 1, 2, c.H + 3, c.H + 4]) expect(o[t * (c.H + 5) + col], 'columns outside the view are left alone').toBe(7);
  }
  return Float32Array.from({ length: T * c.H }, (_, i) => o[Math.floor(i / c.H) * (c.H + 5) + 3 + (i % c.H)]!);
}

async function tfjsForward(moe: FusedMoE, c: MoECase): Promise<Float32Array> {
  const T = c.tokens[0]!;
  const x = tf.tensor2d(caseHidden(c, 0).data, [T, c.H]);
  const logits = tf.tensor2d(caseLogits(c, 0).data, [T, c.E]);
  const y = await moe.forward(x, logits);
  const out = (await y.data()) as Float32Array;
  tf.dispose([x, logits, y]);
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  a.forEach((v, i) => (m = Math.max(m, Math.abs(v - b[i]!))));
  return m;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  const k = cpuKernels();
  registerQuantKernels(['cpu'], { activations: { q8_0: 'a8', q4_0: 'a8', bf16: 'exact' }, gemmQ8_0: k.gemmQ8_0, gemmQ4_0: k.gemmQ4_0, gemmBf16: k.gemmBf16 });
});
afterAll(() => unregisterQuantKernels(['cpu']));

const ISAS = availableIsas().filter((isa, i) => i === 0 || isa === 'portable');

describe('host moe routing equals selectExperts', () => {
  it.each(CASES)('$name', (c) => {
    const moe = build(c, 'fp32');
    const T = 64;
    // Scaled logits; a few rows of exact ties (ties go to the lower id in both).
    const logits = Float32Array.from({ length: T * c.E }, (_, i) => Math.sin(i * 12.9898) * 4);
    for (let e = 0; e < c.E; e++) logits[5 * c.E + e] = 0.25;
    for (let e = 0; e < c.E; e += 2) logits[6 * c.E + e] = 1.5;
    const bias = moe.correctionBias ? vectorData(moe.correctionBias) : null;
    const got = routeHost({ routing: moe.routing, numExperts: c.E }, logits, T, bias);
    const t = tf.tensor2d(logits, [T, c.E]);
    const want = selectExperts(t, { ...moe.routing, correctionBias: (moe.correctionBias?.tensor as tf.Tensor1D | undefined) ?? null });
    expect(Array.from(got.ids)).toEqual(Array.from(want.ids.dataSync()));
    expect(maxDiff(got.weights, want.weights.dataSync() as Float32Array)).toBeLessThan(2e-6);
    tf.dispose([t, want.ids, want.weights]);
    moe.dispose();
  });
});

describe.each(ISAS)('host moe op equals FusedMoE.forward (%s)', (isa) => {
  const kernels = planKernels({ isa });

  it.each(CASES.flatMap((c) => (['fp32', 'bf16', 'q8_0', 'q4_0'] as const).map((format) => ({ c, format, name: `${c.name} ${format}` }))))(
    '$name',
    async ({ c, format }) => {
      const moe = build(c, format);
      const want = await tfjsForward(moe, c);
      const got = runOp(moe, c, kernels);
      const scale = Math.max(...want.map(Math.abs));
      expect(scale).toBeGreaterThan(0.1);
      expect(maxDiff(got, want)).toBeLessThan(1e-5 * scale);
      moe.dispose();
    },
  );

  it('split over 3 EP ranks: the ranks\' parts sum to the whole (what the all-reduce after the op completes)', async () => {
    const c = v3;
    const moe = build(c, 'q8_0');
    const want = await tfjsForward(moe, c);
    const all = moe.experts.planExperts();
    const sum = new Float32Array(want.length);
    for (let r = 0; r < 3; r++) {
      const mine = new Set(determineExpertMap(3, r, c.E).globalIds);
      const part = runOp(moe, c, kernels, all.filter((e) => mine.has(e.id)));
      part.forEach((v, i) => (sum[i]! += v));
    }
    expect(maxDiff(sum, want)).toBeLessThan(1e-5 * Math.max(...want.map(Math.abs)));
    // A rank's part alone is not the whole.
    const mine0 = new Set(determineExpertMap(3, 0, c.E).globalIds);
    expect(maxDiff(runOp(moe, c, kernels, all.filter((e) => mine0.has(e.id))), want)).toBeGreaterThan(1e-3);
    moe.dispose();
  });
});

describe('FusedMoE.record', () => {
  it('records gate → moe → shared experts added, no all-reduce at tp 1', () => {
    const c = { ...v3, nShared: 2 };
    const moe = build(c, 'fp32');
    const b = new PlanBuilder();
    const x = b.act('x', c.H);
    const out = moe.record(b, whole(x));
    const plan = b.build(1, {});
    expect(plan.ops.map((o) => o.kind)).toEqual(['linear', 'moe', 'linear', 'gatedAct', 'linear', 'add']);
    const op = plan.ops[1] as MoeOp;
    expect(op.experts.map((e) => e.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(op.routing.method).toBe('noaux_tc');
    expect(out.width).toBe(c.H);
    moe.dispose();
  });

  it('refuses a block without a gate, naming it', () => {
    const moe = new FusedMoE({
      prefix: PREFIX, hiddenSize: 64, intermediateSize: 32, numExperts: 8, gate: false,
      routing: { topK: 2, scoring: 'softmax', renormalize: true }, tp: solo('tp'),
    });
    const b = new PlanBuilder();
    expect(() => moe.record(b, whole(b.act('x', 64)))).toThrow(`${PREFIX}: FusedMoE without a gate`);
  });

  it('lists only the EP rank\'s own experts', () => {
    const experts = new RoutedExperts({ prefix: PREFIX, hiddenSize: 64, intermediateSize: 32, numExperts: 8, expertMap: determineExpertMap(3, 2, 8), tpSize: 1, tpRank: 0 });
    expect(experts.planExperts().map((e) => e.id)).toEqual([6, 7]);
  });
});
