import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { type DeepseekConfig, type LlamaConfig, type ModelConfig, SUPPORTED_MODEL_TYPES, loadModelConfig, parseModelConfig } from './hf-config.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const MODELS = fileURLToPath(new URL('../../../models', import.meta.url));

function llama(c: ModelConfig): LlamaConfig {
  if (c.family !== 'llama') throw new Error(`expected llama, got ${c.family}`);
  return c;
}

function deepseek(c: ModelConfig): DeepseekConfig {
  if (c.family !== 'deepseek') throw new Error(`expected deepseek, got ${c.family}`);
  return c;
}

const tinyLlama = {
  model_type: 'llama',
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};

function parseError(json: unknown): ConfigError {
  try {
    parseModelConfig(json, 'hand/config.json');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadModelConfig on the fixtures', () => {
  it('llama-tiny (rope_parameters style)', () => {
    const c = llama(loadModelConfig(path.join(FIXTURES, 'llama-tiny')));
    expect(c).toEqual({
      family: 'llama',
      modelType: 'llama',
      vocabSize: 512,
      hiddenSize: 128,
      intermediateSize: 344,
      numHiddenLayers: 4,
      numAttentionHeads: 8,
      numKeyValueHeads: 2,
      headDim: 16,
      rmsNormEps: 1e-5,
      maxPositionEmbeddings: 512,
      tieWordEmbeddings: false,
      attentionBias: false,
      mlpBias: false,
      hiddenAct: 'silu',
      bosTokenId: 1,
      eosTokenId: 2,
      rope: { type: 'default', theta: 10000 },
      dtype: 'float32',
      qkvBias: false,
      oBias: false,
      qkNorm: false,
      slidingWindow: null,
      slidingLayers: { kind: 'all' },
      attentionScale: 0.25,
      attnLogitSoftcapping: null,
    });
  });

  it('llama-bf16 and weft-tiny-code', () => {
    expect(llama(loadModelConfig(path.join(FIXTURES, 'llama-bf16'))).numHiddenLayers).toBe(2);
    const code = llama(loadModelConfig(path.join(MODELS, 'weft-tiny-code')));
    expect(code).toMatchObject({ vocabSize: 4096, hiddenSize: 256, headDim: 32, numKeyValueHeads: 4, bosTokenId: 0, eosTokenId: 1 });
    expect(code.rope).toEqual({ type: 'default', theta: 10000 });
    // bf16 checkpoint: the rotary frequencies are rounded like transformers' model.to(bfloat16)
    expect(code.dtype).toBe('bfloat16');
  });

  it('deepseek-v3-tiny (rope_theta + rope_scaling style, V3 defaults)', () => {
    const c = deepseek(loadModelConfig(path.join(FIXTURES, 'deepseek-v3-tiny')));
    expect(c).toMatchObject({
      family: 'deepseek',
      modelType: 'deepseek_v3',
      vocabSize: 512,
      hiddenSize: 128,
      intermediateSize: 256,
      numHiddenLayers: 3,
      numAttentionHeads: 4,
      numKeyValueHeads: 4,
      headDim: 48,
      qLoraRank: 64,
      kvLoraRank: 32,
      qkNopeHeadDim: 32,
      qkRopeHeadDim: 16,
      vHeadDim: 32,
      nRoutedExperts: 8,
      nSharedExperts: 1,
      numExpertsPerTok: 2,
      moeIntermediateSize: 64,
      firstKDenseReplace: 1,
      moeLayerFreq: 1,
      nGroup: 4,
      topkGroup: 2,
      topkMethod: 'noaux_tc',
      scoringFunc: 'sigmoid',
      normTopkProb: true,
      routedScalingFactor: 2.5,
      ropeInterleave: true,
      hasCorrectionBias: true,
      rmsNormEps: 1e-6,
      bosTokenId: 0,
      eosTokenId: 1,
    });
    expect(c.rope).toEqual({
      type: 'yarn',
      theta: 10000,
      factor: 4,
      originalMaxPositionEmbeddings: 128,
      betaFast: 32,
      betaSlow: 1,
      mscale: 1,
      mscaleAllDim: 1,
    });
  });

  it('deepseek-v2-lite-tiny (no q_lora_rank, V2 defaults, yarn in rope_parameters)', () => {
    const c = deepseek(loadModelConfig(path.join(FIXTURES, 'deepseek-v2-lite-tiny')));
    expect(c).toMatchObject({
      modelType: 'deepseek_v2',
      qLoraRank: null,
      nSharedExperts: 2,
      nGroup: 1,
      topkGroup: 1,
      topkMethod: 'greedy',
      scoringFunc: 'softmax',
      normTopkProb: false,
      routedScalingFactor: 1,
      ropeInterleave: true,
      hasCorrectionBias: false,
      firstKDenseReplace: 1,
      moeLayerFreq: 1,
    });
    expect(c.rope).toEqual({
      type: 'yarn',
      theta: 10000,
      factor: 4,
      originalMaxPositionEmbeddings: 128,
      betaFast: 32,
      betaSlow: 1,
      mscale: 0.707,
      mscaleAllDim: 0.707,
    });
  });

  it('accepts the config file path itself and names a missing or broken file', () => {
    expect(loadModelConfig(path.join(FIXTURES, 'llama-tiny/config.json')).family).toBe('llama');
    expect(() => loadModelConfig(path.join(FIXTURES, 'nope'))).toThrow(/nope\/config\.json: cannot read model config/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-config-'));
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "llama",');
    expect(() => loadModelConfig(dir)).toThrow(ConfigError);
    expect(() => loadModelConfig(dir)).toThrow(/config\.json: model config is not valid JSON/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('parseModelConfig rope styles', () => {
  it('defaults to plain rope with theta 10000', () => {
    expect(parseModelConfig(tinyLlama, 'x').rope).toEqual({ type: 'default', theta: 10000 });
  });

  it('reads hub-style rope_theta with null rope_scaling', () => {
    expect(parseModelConfig({ ...tinyLlama, rope_theta: 500000, rope_scaling: null }, 'x').rope).toEqual({ type: 'default', theta: 500000 });
  });

  it('reads llama3 scaling in the hub style (rope_type key)', () => {
    const c = parseModelConfig(
      {
        ...tinyLlama,
        rope_theta: 500000.0,
        rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      },
      'x',
    );
    expect(c.rope).toEqual({
      type: 'llama3',
      theta: 500000,
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
  });

  it('reads llama3 scaling in the rope_parameters style', () => {
    const c = parseModelConfig(
      {
        ...tinyLlama,
        rope_parameters: {
          rope_type: 'llama3',
          rope_theta: 500000,
          factor: 32,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 8192,
        },
      },
      'x',
    );
    expect(c.rope).toMatchObject({ type: 'llama3', theta: 500000, factor: 32, originalMaxPositionEmbeddings: 8192 });
  });

  it('reads the old "type" key for linear and dynamic scaling', () => {
    expect(parseModelConfig({ ...tinyLlama, rope_scaling: { type: 'linear', factor: 2 } }, 'x').rope).toEqual({ type: 'linear', theta: 10000, factor: 2 });
    expect(parseModelConfig({ ...tinyLlama, rope_theta: 1e6, rope_scaling: { type: 'dynamic', factor: 4 } }, 'x').rope).toEqual({ type: 'dynamic', theta: 1e6, factor: 4 });
  });

  it('fills yarn defaults as transformers does and keeps partial_rotary_factor', () => {
    const c = parseModelConfig(
      { ...tinyLlama, max_position_embeddings: 4096, partial_rotary_factor: 0.5, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, factor: 2 } },
      'x',
    );
    expect(c.rope).toEqual({ type: 'yarn', theta: 1e4, factor: 2, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1, partialRotaryFactor: 0.5 });
  });

  it('prefers rope_parameters when both styles are present', () => {
    const c = parseModelConfig({ ...tinyLlama, rope_theta: 1, rope_scaling: { type: 'linear', factor: 9 }, rope_parameters: { rope_type: 'default', rope_theta: 20000 } }, 'x');
    expect(c.rope).toEqual({ type: 'default', theta: 20000 });
  });

  it('rejects unsupported rope types, listing the supported ones', () => {
    const err = parseError({ ...tinyLlama, rope_scaling: { type: 'mrope', factor: 2 } });
    expect(err.message).toMatch(/hand\/config\.json rope_scaling: rope type "mrope" is not supported \(supported: default, linear, llama3, yarn, dynamic\)/);
    expect(parseError({ ...tinyLlama, rope_scaling: { type: 'su', factor: 2 } }).message).toMatch(/rope type "su" \(Phi-3's long-context scaling, short_factor \/ long_factor\) is not supported/);
  });

  it('names a missing scaling field and its section', () => {
    const err = parseError({ ...tinyLlama, rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, factor: 8, low_freq_factor: 1, original_max_position_embeddings: 8192 } });
    expect(err.message).toBe('hand/config.json rope_parameters: missing required field "high_freq_factor"');
    expect(parseError({ ...tinyLlama, rope_scaling: { type: 'linear' } }).message).toMatch(/rope_scaling: missing required field "factor"/);
  });

  it('rejects per-layer-type rope_parameters rather than guessing', () => {
    const err = parseError({ ...tinyLlama, rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 1e6 } } });
    expect(err.message).toMatch(/per-layer-type "rope_parameters" \(full_attention\) is not supported/);
  });
});

describe('parseModelConfig llama fields', () => {
  it('defaults kv heads to heads and head_dim to hidden / heads', () => {
    const c = llama(parseModelConfig(tinyLlama, 'x'));
    expect(c).toMatchObject({ numKeyValueHeads: 4, headDim: 16, rmsNormEps: 1e-6, maxPositionEmbeddings: 2048, bosTokenId: null, eosTokenId: null });
  });

  it('accepts eos lists and mistral configs', () => {
    const c = llama(parseModelConfig({ ...tinyLlama, model_type: 'mistral', eos_token_id: [128001, 128009], bos_token_id: 128000, sliding_window: 4096, head_dim: null }, 'x'));
    expect(c).toMatchObject({ modelType: 'mistral', eosTokenId: [128001, 128009], bosTokenId: 128000, slidingWindow: 4096, headDim: 16 });
  });

  it('names missing and mistyped fields with the file', () => {
    const { hidden_size: _, ...noHidden } = tinyLlama;
    expect(parseError(noHidden).message).toBe('hand/config.json: missing required field "hidden_size"');
    expect(parseError({ ...tinyLlama, num_hidden_layers: '2' }).message).toBe('hand/config.json: "num_hidden_layers" must be a positive integer, got "2"');
    expect(parseError({ ...tinyLlama, vocab_size: 0 }).message).toMatch(/"vocab_size" must be a positive integer, got 0/);
    expect(parseError({ ...tinyLlama, tie_word_embeddings: 'yes' }).message).toMatch(/"tie_word_embeddings" must be true or false/);
    expect(parseError({ ...tinyLlama, eos_token_id: 'x' }).message).toMatch(/"eos_token_id" must be a token id or a list/);
  });

  it('checks head counts', () => {
    expect(parseError({ ...tinyLlama, num_key_value_heads: 3 }).message).toMatch(/num_attention_heads=4 is not a multiple of num_key_value_heads=3/);
    expect(parseError({ ...tinyLlama, hidden_size: 66 }).message).toMatch(/no head_dim, and hidden_size=66 is not divisible by num_attention_heads=4/);
  });

  it('rejects unsupported model types, listing the supported ones', () => {
    expect(parseError({ ...tinyLlama, model_type: 'gpt2' }).message).toBe(
      `hand/config.json: model_type "gpt2" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
    );
    expect(parseError({ hidden_size: 1 }).message).toMatch(/model_type null is not supported/);
    expect(parseError([1]).message).toMatch(/must be a JSON object/);
  });
});

describe('parseModelConfig deepseek fields', () => {
  const v3 = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'deepseek-v3-tiny/config.json'), 'utf8')) as Record<string, unknown>;

  it('requires q_lora_rank to be present, null allowed', () => {
    const { q_lora_rank: _, ...noQ } = v3;
    expect(parseError(noQ).message).toMatch(/missing required field "q_lora_rank"/);
    expect(deepseek(parseModelConfig({ ...v3, q_lora_rank: null }, 'x')).qLoraRank).toBeNull();
  });

  it('takes topk_method and scoring_func from the config, validating them', () => {
    const c = deepseek(parseModelConfig({ ...v3, model_type: 'deepseek_v2', topk_method: 'group_limited_greedy', n_group: 4, topk_group: 2 }, 'x'));
    expect(c).toMatchObject({ topkMethod: 'group_limited_greedy', scoringFunc: 'softmax', hasCorrectionBias: false });
    const n = deepseek(parseModelConfig({ ...v3, topk_method: 'greedy', scoring_func: 'softmax' }, 'x'));
    expect(n).toMatchObject({ topkMethod: 'greedy', scoringFunc: 'softmax', hasCorrectionBias: false });
    expect(parseError({ ...v3, topk_method: 'best' }).message).toBe(
      'hand/config.json: "topk_method" is "best", expected one of greedy, group_limited_greedy, noaux_tc',
    );
    expect(parseError({ ...v3, scoring_func: 'relu' }).message).toMatch(/"scoring_func" is "relu", expected one of softmax, sigmoid/);
  });

  it('reads rope_interleave, moe_layer_freq and a null n_shared_experts', () => {
    const c = deepseek(parseModelConfig({ ...v3, rope_interleave: false, moe_layer_freq: 2, n_shared_experts: null }, 'x'));
    expect(c).toMatchObject({ ropeInterleave: false, moeLayerFreq: 2, nSharedExperts: 0 });
  });

  it('checks routing sizes', () => {
    expect(parseError({ ...v3, num_experts_per_tok: 9 }).message).toMatch(/num_experts_per_tok=9 is more than n_routed_experts=8/);
    expect(parseError({ ...v3, n_group: 3 }).message).toMatch(/n_routed_experts=8 is not divisible by n_group=3/);
    expect(parseError({ ...v3, topk_group: 5 }).message).toMatch(/topk_group=5 is more than n_group=4/);
    const { kv_lora_rank: _, ...noKv } = v3;
    expect(parseError(noKv).message).toBe('hand/config.json: missing required field "kv_lora_rank"');
  });
});
