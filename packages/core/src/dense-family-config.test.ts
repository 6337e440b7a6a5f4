import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { checkDenseFamilyLayout, layerSlidingWindow } from './dense-family-config.js';
import { loadModelConfig, parseModelConfig } from './hf-config.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const load = (name: string) => loadModelConfig(path.join(FIXTURES, name));
const base = { vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2 };
const windows = (json: Record<string, unknown>) => {
  const c = parseModelConfig({ ...base, ...json }, 'hand/config.json');
  if (c.family !== 'llama' && c.family !== 'gemma2') throw new Error(c.family);
  return Array.from({ length: c.numHiddenLayers }, (_, i) => layerSlidingWindow(c, i));
};
const error = (json: Record<string, unknown>): string => {
  try {
    parseModelConfig({ ...base, ...json }, 'hand/config.json');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('dense family configs (fixtures)', () => {
  it('qwen2: q/k/v biases without an o bias, global attention (use_sliding_window false)', () => {
    const c = load('qwen2-tiny');
    expect(c).toMatchObject({ family: 'llama', modelType: 'qwen2', qkvBias: true, oBias: false, qkNorm: false, headDim: 16, slidingWindow: null, mlpBias: false });
  });
  it('qwen3: q/k norm, explicit head_dim 32 (≠ hidden / heads), no biases', () => {
    const c = load('qwen3-tiny');
    expect(c).toMatchObject({ family: 'llama', modelType: 'qwen3', qkvBias: false, oBias: false, qkNorm: true, headDim: 32, attentionScale: 32 ** -0.5 });
  });
  it('phi3: no biases, default rope', () => {
    expect(load('phi3-tiny')).toMatchObject({ family: 'llama', modelType: 'phi3', qkvBias: false, oBias: false, slidingWindow: null });
  });
  it('mistral: the window on every layer', () => {
    const c = load('mistral-swa-tiny');
    expect(c).toMatchObject({ family: 'llama', modelType: 'mistral', slidingWindow: 8 });
    if (c.family !== 'llama') throw new Error();
    expect([0, 1, 2].map((i) => layerSlidingWindow(c, i))).toEqual([8, 8, 8]);
  });
  it('gemma2: soft-capping, query_pre_attn_scalar, tied head, window on the listed (even) layers', () => {
    const c = load('gemma2-tiny');
    expect(c).toMatchObject({
      family: 'gemma2',
      headDim: 32,
      hiddenAct: 'gelu_pytorch_tanh',
      attnLogitSoftcapping: 50,
      finalLogitSoftcapping: 30,
      queryPreAttnScalar: 32,
      attentionScale: 32 ** -0.5,
      tieWordEmbeddings: true,
      slidingWindow: 8,
    });
    if (c.family !== 'gemma2') throw new Error();
    expect([0, 1, 2].map((i) => layerSlidingWindow(c, i))).toEqual([8, null, 8]);
  });
});

describe('dense family configs (transformers defaults and refusals)', () => {
  it('qwen2: the window only with use_sliding_window, from max_window_layers on', () => {
    expect(windows({ model_type: 'qwen2', sliding_window: 16, max_window_layers: 2 })).toEqual([null, null, null, null]);
    expect(windows({ model_type: 'qwen2', use_sliding_window: true, sliding_window: 16, max_window_layers: 2 })).toEqual([null, null, 16, 16]);
    expect(windows({ model_type: 'qwen3', use_sliding_window: true, sliding_window: 16, max_window_layers: 0 })).toEqual([16, 16, 16, 16]);
    // layer_types, when written, decide which layers slide.
    const listed = ['sliding_attention', 'full_attention', 'full_attention', 'sliding_attention'];
    expect(windows({ model_type: 'qwen2', use_sliding_window: true, sliding_window: 16, layer_types: listed })).toEqual([16, null, null, 16]);
  });
  it('gemma2: even layers slide when layer_types is absent; soft-capping null turns it off', () => {
    expect(windows({ model_type: 'gemma2', sliding_window: 4 })).toEqual([4, null, 4, null]);
    const c = parseModelConfig({ ...base, model_type: 'gemma2', attn_logit_softcapping: null, final_logit_softcapping: null }, 'x');
    expect(c).toMatchObject({ attnLogitSoftcapping: null, finalLogitSoftcapping: null, headDim: 256, tieWordEmbeddings: true });
  });
  it('llama has no window whatever the config says', () => {
    expect(windows({ model_type: 'llama', sliding_window: 4 })).toEqual([null, null, null, null]);
  });
  it('refuses what it does not implement, naming the field', () => {
    expect(error({ model_type: 'gemma2', hidden_activation: 'gelu' })).toMatch(/"hidden_activation" "gelu" is not supported \(only gelu_pytorch_tanh\)/);
    expect(error({ model_type: 'qwen2', layer_types: ['full_attention'] })).toMatch(/"layer_types" must list one of full_attention \/ sliding_attention for each of the 4 layers, got 1 entries/);
    expect(error({ model_type: 'qwen2', layer_types: ['full_attention', 'x', 'full_attention', 'full_attention'] })).toMatch(/"layer_types"/);
    expect(error({ model_type: 'qwen2', hidden_act: 'relu' })).toMatch(/"hidden_act" "relu" is not supported \(silu, gelu_pytorch_tanh\)/);
    expect(error({ model_type: 'mistral', sliding_window: 0 })).toMatch(/"sliding_window" must be a positive integer or null, got 0/);
    expect(error({ model_type: 'phi3', rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [1] } })).toMatch(/rope type "longrope" \(Phi-3.s long-context scaling, short_factor \/ long_factor\) is not supported/);
  });
});

describe('dense family layouts checked before any rank starts', () => {
  const qwen2 = () => {
    const c = load('qwen2-tiny');
    if (c.family !== 'llama') throw new Error();
    return c;
  };
  it('accepts split and replicated KV heads', () => {
    for (const tp of [1, 2, 4, 8]) expect(() => checkDenseFamilyLayout(qwen2(), tp, 1)).not.toThrow();
    expect(() => checkDenseFamilyLayout(qwen2(), 2, 3)).not.toThrow();
  });
  it('names the numbers when heads neither divide nor replicate', () => {
    expect(() => checkDenseFamilyLayout(qwen2(), 3, 1)).toThrow(/num_attention_heads=8 is not divisible by tp=3 \(choose tp from 1, 2, 4, 8\)/);
    const odd = parseModelConfig({ ...base, model_type: 'qwen2', num_attention_heads: 6, num_key_value_heads: 2, hidden_size: 48 }, 'x');
    if (odd.family !== 'llama') throw new Error();
    expect(() => checkDenseFamilyLayout(odd, 3, 1)).toThrow(/num_key_value_heads=2 can be neither split over tp=3 .* nor replicated on it .*; tp that fit: 1, 2, 6/);
    expect(() => checkDenseFamilyLayout(qwen2(), 1, 4)).toThrow(/pp=4 is more than num_hidden_layers=3/);
  });
});
