/**
 * FusedMoE on one rank (in process, groups of one): names, loading, routing
 * variants and the dense reference. The sharded and expert-parallel runs are
 * in fused-moe-parallel.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { GroupCoordinator, SoloCommunicator } from '@weft/comm';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadWeights } from '../weight-loading.js';
import { determineExpertMap } from './expert-map.js';
import { FUSED_MOE_STACKED_PARAMS, FusedMoE, tokenShare } from './fused-moe.js';
import { RoutedExperts } from './routed-experts.js';
import { caseHidden, caseLogits, denseMoE, memoryCheckpoint, moeCheckpoint, PREFIX, type MoECase } from './test-entries/reference.js';


const solo = (kind: string) => new GroupCoordinator({ rank: 0, ranks: [0], uniqueName: `${kind}:0`, cpuGroup: new SoloCommunicator(`${kind}:0`) });

const v3: MoECase = {
  name: 'v3', H: 12, I: 8, E: 8, topK: 3, scoring: 'sigmoid', method: 'noaux_tc', nGroup: 4, topkGroup: 2,
  renormalize: true, scale: 2.5, bias: true, nShared: 1, useGate: true, tokens: [7],
};
const v2: MoECase = {
  name: 'v2', H: 12, I: 8, E: 16, topK: 4, scoring: 'softmax', method: 'greedy', renormalize: false, scale: 1,
  bias: false, nShared: 2, useGate: false, tokens: [9],
};
const v2Grouped: MoECase = {
  name: 'v2-grouped', H: 12, I: 8, E: 16, topK: 3, scoring: 'softmax', method: 'group_limited_greedy', nGroup: 4, topkGroup: 2,
  renormalize: false, scale: 16, bias: false, nShared: 0, useGate: false, tokens: [6], fusedCheckpoint: true,
};

function build(c: MoECase, ep: GroupCoordinator | null = null): FusedMoE {
  return new FusedMoE({
    prefix: PREFIX, hiddenSize: c.H, intermediateSize: c.I, numExperts: c.E,
    routing: { topK: c.topK, scoring: c.scoring, method: c.method, nGroup: c.nGroup, topkGroup: c.topkGroup, renormalize: c.renormalize, routedScalingFactor: c.scale },
    correctionBias: c.bias, numSharedExperts: c.nShared, tp: solo('tp'), ep,
  });
}

async function run(c: MoECase, ep: GroupCoordinator | null = null): Promise<Float32Array> {
  const before = tf.memory().numTensors;
  const moe = build(c, ep);
  const { unused } = loadWeights({ params: moe.parameters(), checkpoint: memoryCheckpoint(moeCheckpoint(c)), stacked: [...FUSED_MOE_STACKED_PARAMS], elsewhere: (n) => moe.isElsewhere(n) });
  expect(unused).toEqual([]);
  const T = c.tokens[0]!;
  const x = tf.tensor2d(caseHidden(c, 0).data, [T, c.H]);
  const logits = c.useGate ? undefined : tf.tensor2d(caseLogits(c, 0).data, [T, c.E]);
  const y = await moe.forward(x, logits);
  expect(y.shape).toEqual([T, c.H]);
  const out = (await y.data()) as Float32Array;
  for (const t of [x, logits, y]) t?.dispose();
  moe.dispose();
  expect(tf.memory().numTensors, 'forward and dispose leave nothing behind').toBe(before);
  return out;
}

function expectClose(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  let err = 0;
  got.forEach((v, i) => (err = Math.max(err, Math.abs(v - want[i]!))));
  expect(err, what).toBeLessThan(1e-5);
}

// The ranks compute on wasm; the tests' references on the cpu backend.
describe.each(['cpu', 'wasm'])('on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
  });

  describe('FusedMoE on one rank equals the dense MoE block', () => {
    it.each([v3, v2, v2Grouped])('$name', async (c) => {
      expectClose(await run(c), denseMoE(c, 0), c.name);
    });

    it('with expert parallelism of size 1 (every expert local, no exchange)', async () => {
      expectClose(await run(v3, solo('ep')), denseMoE(v3, 0), 'ep 1');
    });

    it('with no tokens', async () => {
      const c = { ...v3, tokens: [0] };
      expect((await run(c)).length).toBe(0);
    });
  });

  describe('FusedMoE parameters', () => {
    it('are named as the checkpoint, gate_proj/up_proj stacked into gate_up_proj', () => {
      const moe = build(v3);
      const names = moe.parameters().map((p) => `${p.name} ${JSON.stringify(p.shape)}`);
      expect(names).toContain(`${PREFIX}.gate.weight [8,12]`);
      expect(names).toContain(`${PREFIX}.gate.e_score_correction_bias [8]`);
      expect(names).toContain(`${PREFIX}.experts.7.gate_up_proj.weight [16,12]`);
      expect(names).toContain(`${PREFIX}.experts.0.down_proj.weight [12,8]`);
      expect(names).toContain(`${PREFIX}.shared_experts.gate_up_proj.weight [16,12]`);
      expect(names).toContain(`${PREFIX}.shared_experts.down_proj.weight [12,8]`);
      expect(names.length).toBe(2 + 2 * 8 + 2);
    });

    it('isElsewhere names the experts of other EP ranks, and only those', () => {
      const experts = new RoutedExperts({ prefix: PREFIX, hiddenSize: 12, intermediateSize: 8, numExperts: 8, expertMap: determineExpertMap(3, 1, 8), tpSize: 1, tpRank: 0 });
      expect(experts.parameters().map((p) => p.name)).toEqual([3, 4, 5].map((e) => `${PREFIX}.experts.${e}.gate_up_proj.weight`).concat([3, 4, 5].map((e) => `${PREFIX}.experts.${e}.down_proj.weight`)));
      expect(experts.isElsewhere(`${PREFIX}.experts.2.gate_proj.weight`)).toBe(true);
      expect(experts.isElsewhere(`${PREFIX}.experts.6.down_proj.weight`)).toBe(true);
      expect(experts.isElsewhere(`${PREFIX}.experts.4.up_proj.weight`)).toBe(false);
      expect(experts.isElsewhere(`${PREFIX}.shared_experts.gate_proj.weight`)).toBe(false);
      expect(experts.isElsewhere(`model.layers.2.mlp.experts.2.gate_proj.weight`)).toBe(false);
      expect(experts.isElsewhere(`${PREFIX}.gate.weight`)).toBe(false);
    });

    it('a missing expert tensor is reported by its checkpoint name', () => {
      const moe = build(v2);
      const ckpt = moeCheckpoint(v2);
      ckpt.delete(`${PREFIX}.experts.5.up_proj.weight`);
      expect(() => loadWeights({ params: moe.parameters(), checkpoint: memoryCheckpoint(ckpt), stacked: [...FUSED_MOE_STACKED_PARAMS] })).toThrow(
        /experts\.5\.up_proj\.weight/,
      );
      moe.dispose();
    });

    it('without a gate, forward needs the router logits', async () => {
      const moe = new FusedMoE({ prefix: PREFIX, hiddenSize: 12, intermediateSize: 8, numExperts: 8, routing: { topK: 2, scoring: 'softmax', renormalize: false }, gate: false, tp: solo('tp') });
      expect(moe.parameters().some((p) => p.name.endsWith('gate.weight'))).toBe(false);
      const x = tf.zeros([2, 12]) as tf.Tensor2D;
      await expect(moe.forward(x)).rejects.toThrow(/without a gate/);
      x.dispose();
    });
  });

  describe('tokenShare', () => {
    it('splits T over TP peers: T // tp each, the first T % tp one more', () => {
      expect([0, 1, 2].map((r) => tokenShare(7, 3, r))).toEqual([[0, 3], [3, 2], [5, 2]]);
      expect([0, 1].map((r) => tokenShare(1, 2, r))).toEqual([[0, 1], [1, 0]]);
    });
  });
});
