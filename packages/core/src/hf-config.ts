/**
 * Hugging Face `config.json` for the model families weft runs, normalized to
 * camelCase with transformers' defaults filled in, so model code never reads
 * raw JSON or guesses a default.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';
import { ConfigFields, isJsonObject } from './config-fields.js';
import { type Gemma2Config, type LlamaConfig, type LlamaModelType, parseGemma2, parseLlamaFamily } from './dense-family-config.js';

export type { Gemma2Config, LlamaConfig } from './dense-family-config.js';
import { parseMixtral, parseQwen3Moe, type MixtralConfig, type Qwen3MoeConfig } from './moe-family-config.js';
import { type CommonModelConfig, parseCommon } from './common-config.js';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma2', 'deepseek_v2', 'deepseek_v3', 'qwen3_moe', 'mixtral'] as const;


export type TopkMethod = 'greedy' | 'group_limited_greedy' | 'noaux_tc';
export type ScoringFunc = 'softmax' | 'sigmoid';

export interface DeepseekConfig extends CommonModelConfig {
  family: 'deepseek';
  modelType: 'deepseek_v2' | 'deepseek_v3';
  /** null: queries are projected directly (V2-Lite), without the low-rank q_a/q_b pair. */
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  nRoutedExperts: number;
  nSharedExperts: number;
  numExpertsPerTok: number;
  moeIntermediateSize: number;
  firstKDenseReplace: number;
  moeLayerFreq: number;
  nGroup: number;
  topkGroup: number;
  topkMethod: TopkMethod;
  scoringFunc: ScoringFunc;
  normTopkProb: boolean;
  routedScalingFactor: number;
  /** Rope rotates adjacent pairs (x0,x1),(x2,x3)... rather than the two halves; V2 always does. */
  ropeInterleave: boolean;
  /** The router has `e_score_correction_bias` (noaux_tc top-k). */
  hasCorrectionBias: boolean;
}

export type ModelConfig = LlamaConfig | Gemma2Config | DeepseekConfig | Qwen3MoeConfig | MixtralConfig;

/** Read `config.json` from a model directory (or the config file itself). */
export function loadModelConfig(dir: string): ModelConfig {
  const file = fs.existsSync(dir) && fs.statSync(dir).isFile() ? dir : path.join(dir, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`${file}: cannot read model config (${(cause as Error).message})`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`${file}: model config is not valid JSON (${(cause as Error).message})`, { cause });
  }
  return parseModelConfig(json, file);
}

/** Normalize a parsed config.json; `source` names it in errors. */
export function parseModelConfig(json: unknown, source: string): ModelConfig {
  if (!isJsonObject(json)) throw new ConfigError(`${source}: model config must be a JSON object`);
  const f = new ConfigFields(json, source);
  const modelType = f.has('model_type') ? f.str('model_type') : undefined;
  switch (modelType) {
    case 'llama':
    case 'mistral':
    case 'qwen2':
    case 'qwen3':
    case 'phi3':
      return parseLlamaFamily(f, modelType satisfies LlamaModelType);
    case 'gemma2':
      return parseGemma2(f);
    case 'deepseek_v2':
    case 'deepseek_v3':
      return parseDeepseek(f, modelType);
    case 'qwen3_moe':
      return parseQwen3Moe(f);
    case 'mixtral':
      return parseMixtral(f);
    default:
      throw new ConfigError(
        `${source}: model_type ${JSON.stringify(modelType ?? null)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
      );
  }
}



function parseDeepseek(f: ConfigFields, modelType: 'deepseek_v2' | 'deepseek_v3'): DeepseekConfig {
  const v3 = modelType === 'deepseek_v3';
  const common = parseCommon(f, { maxPositionEmbeddings: v3 ? 4096 : 2048 });
  if (f.raw('q_lora_rank') === undefined) {
    throw new ConfigError(`${f.source}: missing required field "q_lora_rank" (null when queries are not low-rank)`);
  }
  const qkNopeHeadDim = f.int('qk_nope_head_dim');
  const qkRopeHeadDim = f.int('qk_rope_head_dim');
  const topkMethod = f.oneOf<TopkMethod>('topk_method', ['greedy', 'group_limited_greedy', 'noaux_tc'], v3 ? 'noaux_tc' : 'greedy');
  const config: DeepseekConfig = {
    family: 'deepseek',
    modelType,
    ...common,
    headDim: qkNopeHeadDim + qkRopeHeadDim,
    qLoraRank: f.intOrNull('q_lora_rank', null),
    kvLoraRank: f.int('kv_lora_rank'),
    qkNopeHeadDim,
    qkRopeHeadDim,
    vHeadDim: f.int('v_head_dim'),
    nRoutedExperts: f.int('n_routed_experts'),
    // An explicit null means no shared experts; absent means transformers' default.
    nSharedExperts: f.intOrNull('n_shared_experts', v3 ? 1 : 2) ?? 0,
    numExpertsPerTok: f.int('num_experts_per_tok'),
    moeIntermediateSize: f.int('moe_intermediate_size'),
    firstKDenseReplace: f.int('first_k_dense_replace', v3 ? 3 : 0, 0),
    moeLayerFreq: f.int('moe_layer_freq', 1),
    nGroup: f.int('n_group', v3 ? 8 : 1),
    topkGroup: f.int('topk_group', v3 ? 4 : 1),
    topkMethod,
    scoringFunc: f.oneOf<ScoringFunc>('scoring_func', ['softmax', 'sigmoid'], v3 ? 'sigmoid' : 'softmax'),
    normTopkProb: f.bool('norm_topk_prob', v3),
    routedScalingFactor: f.positive('routed_scaling_factor', v3 ? 2.5 : 1),
    // transformers' DeepseekV2 always rotates interleaved pairs (view_as_complex); V3 has a flag.
    ropeInterleave: f.bool('rope_interleave', true),
    hasCorrectionBias: topkMethod === 'noaux_tc',
  };
  checkRouting(config, f.source);
  return config;
}

function checkRouting(c: DeepseekConfig, source: string): void {
  if (c.numExpertsPerTok > c.nRoutedExperts) {
    throw new ConfigError(`${source}: num_experts_per_tok=${c.numExpertsPerTok} is more than n_routed_experts=${c.nRoutedExperts}`);
  }
  if (c.nRoutedExperts % c.nGroup !== 0) {
    throw new ConfigError(`${source}: n_routed_experts=${c.nRoutedExperts} is not divisible by n_group=${c.nGroup}`);
  }
  if (c.topkGroup > c.nGroup) {
    throw new ConfigError(`${source}: topk_group=${c.topkGroup} is more than n_group=${c.nGroup}`);
  }
}

