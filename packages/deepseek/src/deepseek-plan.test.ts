/**
 * DeepSeek's device plan as recorded (no executor): MLA in both cache forms,
 * the dense first layer and the MoE layers, with the widths the fixture's
 * shapes give. Its numbers against the tfjs path: deepseek-plan-parity.test.ts.
 */
import '@tensorflow/tfjs-backend-cpu';
import { fileURLToPath } from 'node:url';
import { GroupCoordinator, SoloCommunicator, type ParallelState } from '@weft/comm';
import { loadModelConfig, resolveParallelConfig, type DeepseekConfig } from '@weft/core';
import type { AttentionOp, HeadMatmulOp, MoeOp, PlanOp } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import { DeepseekForCausalLM } from './deepseek-for-causal-lm.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

function soloState(): ParallelState {
  const g = (kind: string) => new GroupCoordinator({ rank: 0, ranks: [0], uniqueName: `${kind}:0`, cpuGroup: new SoloCommunicator(`${kind}:0`) });
  return { rank: 0, worldSize: 1, config: resolveParallelConfig({}), world: g('world'), tp: g('tp'), pp: g('pp'), dp: g('dp'), ep: g('ep') };
}

function config(name: string): DeepseekConfig {
  const c = loadModelConfig(fixture(name));
  if (c.family !== 'deepseek') throw new Error(c.family);
  return c;
}

/** The op kinds of one decoder layer: from its input norm to the one before the next layer's. */
function layerKinds(ops: readonly PlanOp[], layer: number): string[] {
  const starts = ops.flatMap((o, i) => (o.kind === 'rmsNorm' && o.residual ? [i] : []));
  // Two residual norms per layer (input, post-attention); the final norm closes the last layer.
  return ops.slice(starts[2 * layer], starts[2 * layer + 2]).map((o) => o.kind);
}

describe('DeepSeek V3 device plan', () => {
  const c = config('deepseek-v3-tiny');

  it('latent cache: q_a → norm → q_b, kv_a → latent norm, rotary, absorbed attention over [latent | k_rope], dense then MoE layers', () => {
    const plan = new DeepseekForCausalLM(c, soloState()).recordPlan();
    const mla = [
      'rmsNorm', 'linear', 'rmsNorm', 'linear', 'linear', 'rmsNorm', 'rotary', 'copyHeads', 'rotary',
      'roundInput', 'headMatmul', 'copyHeads', 'attention', 'headMatmul', 'linear', 'rmsNorm',
    ];
    expect(layerKinds(plan.ops, 0)).toEqual([...mla, 'linear', 'gatedAct', 'linear']);
    expect(layerKinds(plan.ops, 1)).toEqual([...mla, 'linear', 'moe', 'linear', 'gatedAct', 'linear', 'add']);
    expect(plan.numCaches).toBe(c.numHiddenLayers);
    const attn = plan.ops.find((o): o is AttentionOp => o.kind === 'attention')!;
    expect(attn).toMatchObject({ numHeads: 4, numKvHeads: 1, headDim: 32 + 16, vHeadDim: 32, valueIsKeyPrefix: true, v: null });
    expect(attn.k.width).toBe(c.kvLoraRank + c.qkRopeHeadDim);
    const [uk, uv] = plan.ops.filter((o): o is HeadMatmulOp => o.kind === 'headMatmul');
    expect([uk!.weight.heads, uk!.weight.k, uk!.weight.n, uk!.xStride, uk!.outStride]).toEqual([4, 32, 32, 48, 48]);
    expect([uv!.weight.k, uv!.weight.n, uv!.xStride, uv!.outStride]).toEqual([32, 32, 32, 32]);
    expect(uk!.weight.name).toBe('model.layers.0.self_attn.kv_b_proj.W_UK');
    const moe = plan.ops.find((o): o is MoeOp => o.kind === 'moe')!;
    expect(moe.routing).toMatchObject({ topK: 2, scoring: 'sigmoid', method: 'noaux_tc', nGroup: 4, topkGroup: 2, renormalize: true, routedScalingFactor: 2.5 });
    expect(moe.correctionBias?.name).toBe('model.layers.1.mlp.gate.e_score_correction_bias');
    expect(moe.experts.length).toBe(8);
  });

  it('full cache: kv_b_proj, keys [k_nope | shared k_rope] and values per head, no absorption', () => {
    const plan = new DeepseekForCausalLM(c, soloState(), { kvCache: 'full' }).recordPlan();
    expect(layerKinds(plan.ops, 0).slice(0, 16)).toEqual([
      'rmsNorm', 'linear', 'rmsNorm', 'linear', 'linear', 'rmsNorm', 'rotary', 'copyHeads', 'rotary',
      'copyHeads', 'linear', 'copyHeads', 'copyHeads', 'copyHeads', 'attention', 'linear',
    ]);
    const attn = plan.ops.find((o): o is AttentionOp => o.kind === 'attention')!;
    expect(attn).toMatchObject({ numHeads: 4, numKvHeads: 4, headDim: 48, vHeadDim: 32, valueIsKeyPrefix: false });
    const repeat = plan.ops.find((o) => o.kind === 'copyHeads' && o.xStride === 0);
    expect(repeat).toMatchObject({ heads: 4, width: 16, outStride: 48 });
  });

  it('V2-Lite (no q_lora): q_proj straight from the hidden states, softmax greedy routing', () => {
    const v2 = config('deepseek-v2-lite-tiny');
    const plan = new DeepseekForCausalLM(v2, soloState()).recordPlan();
    expect(layerKinds(plan.ops, 0).slice(0, 4)).toEqual(['rmsNorm', 'linear', 'linear', 'rmsNorm']);
    const moe = plan.ops.find((o): o is MoeOp => o.kind === 'moe');
    if (moe) expect(moe.routing).toMatchObject({ scoring: 'softmax', renormalize: false });
  });
});
