import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModelConfig, parseModelConfig } from './hf-config.js';
import { checkMoeFamilyLayout, isQwen3MoeSparseLayer, type MixtralConfig, type Qwen3MoeConfig } from './moe-family-config.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

const qwenJson = {
  model_type: 'qwen3_moe', vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 6, num_attention_heads: 4,
  num_key_value_heads: 2, num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 16,
};
const mixtralJson = {
  model_type: 'mixtral', vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
};
const qwen = (extra: Record<string, unknown> = {}) => parseModelConfig({ ...qwenJson, ...extra }, 'q/config.json') as Qwen3MoeConfig;
const mixtral = (extra: Record<string, unknown> = {}) => parseModelConfig({ ...mixtralJson, ...extra }, 'm/config.json') as MixtralConfig;

describe('qwen3_moe config.json', () => {
  it('reads the fixture (transformers 5 writes num_experts as num_local_experts)', () => {
    const c = loadModelConfig(fixture('qwen3-moe-tiny')) as Qwen3MoeConfig;
    expect(c).toMatchObject({ family: 'qwen3_moe', numExperts: 8, numExpertsPerTok: 2, moeIntermediateSize: 64, normTopkProb: true, headDim: 32, qkNorm: true });
    expect(c.slidingWindow).toBeNull();
    const d = loadModelConfig(fixture('qwen3-moe-5e-dense')) as Qwen3MoeConfig;
    expect(d).toMatchObject({ numExperts: 5, numExpertsPerTok: 3, normTopkProb: false, mlpOnlyLayers: [2], qkvBias: true, oBias: true, tieWordEmbeddings: true, headDim: 24 });
  });

  it("transformers' defaults: norm_topk_prob false, no bias, head_dim = hidden / heads, no window", () => {
    const c = qwen();
    expect(c).toMatchObject({ normTopkProb: false, qkvBias: false, oBias: false, headDim: 8, decoderSparseStep: 1, mlpOnlyLayers: [], slidingWindow: null });
    expect(qwen({ sliding_window: 16 }).slidingWindow).toBeNull();
  });

  it('use_sliding_window: every layer slides (4096 unless given)', () => {
    expect(qwen({ use_sliding_window: true, sliding_window: 16 })).toMatchObject({ slidingWindow: 16, slidingLayers: { kind: 'all' } });
    expect(qwen({ use_sliding_window: true }).slidingWindow).toBe(4096);
  });

  it('MoE on every decoder_sparse_step-th layer not in mlp_only_layers (vLLM / transformers)', () => {
    const c = qwen({ decoder_sparse_step: 2, mlp_only_layers: [3] });
    expect([0, 1, 2, 3, 4, 5].map((i) => isQwen3MoeSparseLayer(c, i))).toEqual([false, true, false, false, false, true]);
  });

  it.each([
    [{ num_experts_per_tok: 9 }, /num_experts_per_tok=9 is more than the 8 experts/],
    [{ num_local_experts: 4 }, /"num_experts"=8 and "num_local_experts"=4 disagree/],
    [{ mlp_only_layers: [6] }, /"mlp_only_layers" must be a list of layer indices in \[0, 6\), got \[6\]/],
    [{ mlp_only_layers: 'all' }, /"mlp_only_layers" must be a list/],
    [{ decoder_sparse_step: 0 }, /"decoder_sparse_step" must be a positive integer, got 0/],
    [{ use_sliding_window: true, sliding_window: 0 }, /"sliding_window" must be a positive integer or null, got 0/],
    [{ hidden_act: 'gelu' }, /"hidden_act" "gelu" is not supported for the experts \(only silu\)/],
    [{ num_experts: 0 }, /"num_experts" must be a positive integer, got 0/],
  ])('refuses %j', (extra, msg) => {
    expect(() => qwen(extra)).toThrow(msg);
  });
});

describe('mixtral config.json', () => {
  it('reads the fixtures', () => {
    expect(loadModelConfig(fixture('mixtral-tiny'))).toMatchObject({ family: 'mixtral', numExperts: 4, numExpertsPerTok: 2, moeIntermediateSize: 344, normTopkProb: true, slidingWindow: null });
    expect(loadModelConfig(fixture('mixtral-swa-tiny'))).toMatchObject({ slidingWindow: 8, slidingLayers: { kind: 'all' } });
  });

  it("MixtralConfig's defaults: 8 experts top-2, rms_norm_eps 1e-5, rope_theta 1e6; no biases whatever the config says", () => {
    const c = mixtral({ attention_bias: true });
    expect(c).toMatchObject({ numExperts: 8, numExpertsPerTok: 2, rmsNormEps: 1e-5, qkvBias: false, oBias: false, attentionBias: false, headDim: 8 });
    expect(c.rope.theta).toBe(1e6);
    expect(mixtral({ rope_theta: 500 }).rope.theta).toBe(500);
    expect(mixtral({ rope_parameters: { rope_type: 'default', rope_theta: 700 } }).rope.theta).toBe(700);
    expect(mixtral({ num_experts: 6 }).numExperts).toBe(6);
    expect(() => mixtral({ hidden_act: 'relu' })).toThrow(/m\/config.json: "hidden_act" "relu" is not supported/);
  });
});

describe('checkMoeFamilyLayout: what cannot work, before any rank starts, naming the numbers', () => {
  it('heads, KV heads (replicated when tp ≥ their count), expert and dense intermediate sizes', () => {
    expect(() => checkMoeFamilyLayout(qwen(), { tp: 3, ep: false })).toThrow(/num_attention_heads=4/);
    expect(() => checkMoeFamilyLayout(qwen({ num_attention_heads: 6, num_key_value_heads: 3, head_dim: 8 }), { tp: 2, ep: false })).toThrow(/num_key_value_heads=3/);
    expect(() => checkMoeFamilyLayout(qwen({ moe_intermediate_size: 18 }), { tp: 4, ep: false })).toThrow(/moe_intermediate_size=18/);
    // Under EP the experts are whole: any intermediate size, any expert count.
    expect(() => checkMoeFamilyLayout(qwen({ moe_intermediate_size: 18, num_experts: 5 }), { tp: 4, ep: true })).not.toThrow();
    expect(() => checkMoeFamilyLayout(qwen({ intermediate_size: 50, mlp_only_layers: [1] }), { tp: 4, ep: true })).toThrow(/intermediate_size \(the dense MLP layers\)=50/);
    expect(() => checkMoeFamilyLayout(qwen({ intermediate_size: 50 }), { tp: 4, ep: true })).not.toThrow();
    expect(() => checkMoeFamilyLayout(mixtral({ intermediate_size: 50 }), { tp: 4, ep: false })).toThrow(/intermediate_size \(per expert\)=50/);
    expect(() => checkMoeFamilyLayout(mixtral({ num_key_value_heads: 1, num_attention_heads: 4 }), { tp: 4, ep: false })).not.toThrow();
    expect(() => checkMoeFamilyLayout(mixtral(), { tp: 1, pp: 3, ep: false })).toThrow(/pp=3 is more than num_hidden_layers=2/);
  });
});
