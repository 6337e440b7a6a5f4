/**
 * The moe op on the WebGPU executor (moe-experts.ts: routing, counts, prefix sums and the pairs' scatter on
 * the device, the experts' tiled GEMV / GEMM over the step's tiles, the combine) against a weight-only
 * reference on the tfjs cpu backend: `routeHost`'s choice (moe/router.ts's rules) and each chosen expert's
 * SiLU MLP on the weights as stored, summed in ascending expert id. Every tile size the op has (1, 2, 4, 8
 * rows, the 64-row GEMM with experts of more than one tile), every weight format, one expert held on another
 * EP rank, consecutive steps of one shape with other routings (the step's command buffer is recorded ahead),
 * grouped noaux_tc routing, and the host routing above 256 experts.
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
import { routeHost } from '../host/moe.js';
import type { MoeOp } from '../ops.js';
import { vectorData } from '../weights.js';
import { useTestDevice } from './test-device.js';
import { WebGpuPlanExecutor } from './webgpu-plan-executor.js';

const gpu = useTestDevice();

type Format = 'fp32' | 'bf16' | 'q8_0' | 'q4_0';

function expertWeight(n: number, k: number, format: Format, seed: number): LinearWeight {
  const w = new LinearWeight(`model.layers.1.mlp.experts.${seed}.w`, n, k, defaultWeightLoader);
  if (format === 'bf16') w.useMethod(new UnquantizedLinearMethod('bfloat16'));
  if (format === 'q8_0' || format === 'q4_0') w.useMethod(new GgmlLinearMethod(format));
  w.load(hostWeight('w', randomHost([n, k], seed, 0.3)));
  return w;
}

function stepOf(T: number, hidden: Float32Array): PlanStepInput {
  const meta = buildAttentionMetadata([{ seqId: 0, queryLen: T, blockTable: Array.from({ length: Math.ceil(T / 4) }, (_, i) => i % 80) }], 4);
  return { tokenIds: new Int32Array(T), positions: positionsOf(meta), seqs: meta.seqs, blockSize: 4, sampledRows: Int32Array.from([T - 1]), hidden };
}

/** The op's output on the tfjs cpu backend from the same logits: routeHost's pairs, weight-only experts in ascending id. */
function reference(op: MoeOp, gate: LinearWeight, x: Float32Array, T: number): Float32Array {
  const H = op.x.width;
  return tf.tidy(() => {
    const xt = tf.tensor2d(x, [T, H]);
    const logits = tf.matMul(xt, gate.denseTransposed()).dataSync() as Float32Array;
    const { ids, weights, topK } = routeHost(op, logits, T, op.correctionBias ? vectorData(op.correctionBias) : null);
    const out = new Float32Array(T * H);
    for (const e of op.experts) {
      const rows: number[] = [];
      const ws: number[] = [];
      for (let t = 0; t < T; t++) for (let k = 0; k < topK; k++) if (ids[t * topK + k] === e.id) (rows.push(t), ws.push(weights[t * topK + k]!));
      if (!rows.length) continue;
      const xe = tf.gather(xt, rows);
      const gu = tf.matMul(xe, e.gateUp.denseTransposed());
      const [g, u] = tf.split(gu, 2, 1);
      const y = tf.matMul(tf.mul(tf.mul(g!, tf.sigmoid(g!)), u!), e.down.denseTransposed()).dataSync() as Float32Array;
      rows.forEach((t, j) => {
        for (let c = 0; c < H; c++) out[t * H + c]! += ws[j]! * y[j * H + c]!;
      });
    }
    return out;
  });
}

interface Case {
  format: Format;
  /** Step rows of each step (one executor, in order). */
  steps: number[];
  E: number;
  /** Experts held here (the rest on other EP ranks). */
  held: number[];
  topK: number;
  routing: 'softmax' | 'noaux_tc';
  H?: number;
  I?: number;
}

async function check(c: Case): Promise<number> {
  const [H, I] = [c.H ?? 64, c.I ?? 64];
  const b = new PlanBuilder();
  const x = b.act('x', H);
  const logits = b.act('router', c.E);
  const out = b.act('out', H);
  const gate = expertWeight(c.E, H, 'fp32', 7);
  b.op({ kind: 'linear', x: whole(x), out: whole(logits), weight: gate, bias: null, accumulate: false });
  const experts = c.held.map((id) => ({ id, gateUp: expertWeight(2 * I, H, c.format, 1000 + id), down: expertWeight(H, I, c.format, 2000 + id) }));
  const noaux = c.routing === 'noaux_tc';
  const bias = new Parameter('bias', [c.E]);
  bias.load(hostWeight('bias', randomHost([c.E], 9, 0.5)));
  const op: MoeOp = {
    kind: 'moe',
    x: whole(x),
    logits: whole(logits),
    out: whole(out),
    routing: noaux
      ? { topK: c.topK, scoring: 'sigmoid', renormalize: true, method: 'noaux_tc', nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 }
      : { topK: c.topK, scoring: 'softmax', renormalize: false, method: 'greedy' },
    correctionBias: noaux ? bias : null,
    numExperts: c.E,
    experts,
    exchange: null,
  };
  b.op(op);
  const plan = b.build(1, { inHidden: x, hidden: out });
  const ex = await WebGpuPlanExecutor.create({ plan, device: gpu(), maxRows: Math.max(...c.steps), maxSeqs: 1, maxModelLen: 320 });
  let worst = 0;
  try {
    await ex.initCaches(80, 4);
    for (const [i, T] of c.steps.entries()) {
      const hidden = randomHost([T, H], 100 + i, 1).data as Float32Array;
      const got = (await ex.step(stepOf(T, hidden))).hidden!;
      const want = reference(op, gate, hidden, T);
      expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(0.01);
      for (let j = 0; j < want.length; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]!));
    }
  } finally {
    ex.dispose();
  }
  return worst;
}

describe('moe on the WebGPU executor (device routing, tiled experts) against the weight-only tfjs reference', () => {
  const formats: Format[] = ['fp32', 'bf16', 'q8_0', 'q4_0'];
  // Steps 1 / 3 / 12 / 40 rows take tiles of 1 / 2 / 4 / 8 rows (the GEMV), 150 the 64-row GEMM tiles (experts
  // with ~50 and ~100 rows: one and two tiles); 12 again after 3 with other data (the recorded command buffer).
  it.each(formats)('%s: steps of 1, 3, 12, 40, 150, 12 rows, greedy softmax top 2 of 6 experts, 5 held', async (format) => {
    const worst = await check({ format, steps: [1, 3, 12, 40, 150, 12], E: 6, held: [0, 1, 2, 4, 5], topK: 2, routing: 'softmax' });
    expect(worst).toBeLessThan(2e-4);
  });

  it('noaux_tc over 4 groups of 4 experts (2 kept), top 6 of 16, 14 held, steps of 16, 70, 5 and 300 rows (a router thread takes two rows)', async () => {
    const worst = await check({ format: 'bf16', steps: [16, 70, 5, 300], E: 16, held: [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 15], topK: 6, routing: 'noaux_tc', H: 32, I: 32 });
    expect(worst).toBeLessThan(2e-4);
  });

  it('above 256 experts the host routes into the same layout: 260 experts top 3, steps of 9 and 80 rows', async () => {
    const worst = await check({ format: 'fp32', steps: [9, 80], E: 260, held: Array.from({ length: 260 }, (_, i) => i), topK: 3, routing: 'softmax', H: 32, I: 32 });
    expect(worst).toBeLessThan(2e-4);
  });
});
