/**
 * Rotary embedding settings, normalized from both config styles on the Hub:
 * the older `rope_theta` + `rope_scaling: {type | rope_type, ...}` and the
 * newer `rope_parameters: {rope_type, rope_theta, ...}`.
 */
import { ConfigError } from './errors.js';
import { ConfigFields, type Json, isJsonObject } from './config-fields.js';

export const ROPE_TYPES = ['default', 'linear', 'llama3', 'yarn', 'dynamic'] as const;
export type RopeType = (typeof ROPE_TYPES)[number];

export interface RopeConfig {
  type: RopeType;
  theta: number;
  /** linear, dynamic, llama3 and yarn: how much longer the context is than in training. */
  factor?: number;
  /** llama3 */
  lowFreqFactor?: number;
  /** llama3 */
  highFreqFactor?: number;
  /** llama3 and yarn (yarn falls back to max_position_embeddings, as transformers does); dynamic when given. */
  originalMaxPositionEmbeddings?: number;
  /** yarn, default 32 */
  betaFast?: number;
  /** yarn, default 1 */
  betaSlow?: number;
  /** yarn; left out when the config leaves it out, since transformers treats absence differently from 1. */
  mscale?: number;
  /** yarn; as for mscale. */
  mscaleAllDim?: number;
  /** yarn: explicit attention scaling, overriding the one derived from mscale. */
  attentionFactor?: number;
  /** Fraction of each head's dims that rotate, when the config gives one. */
  partialRotaryFactor?: number;
  /** yarn: floor/ceil the correction range (transformers' default true; gpt-oss sets false). */
  truncate?: boolean;
}

const DEFAULT_THETA = 10000;

/** Read the rope settings of `json` (a whole config.json). */
export function parseRope(json: Json, source: string, maxPositionEmbeddings: number): RopeConfig {
  const params = ropeSection(json, source);
  const section = params === undefined ? undefined : new ConfigFields(params.value, `${source} ${params.key}`);
  const top = new ConfigFields(json, source);

  const rawType = section?.has('rope_type') ? section.str('rope_type') : section?.has('type') ? section.str('type') : 'default';
  if (!(ROPE_TYPES as readonly string[]).includes(rawType)) {
    const what = rawType === 'longrope' || rawType === 'su' ? " (Phi-3's long-context scaling, short_factor / long_factor)" : '';
    throw new ConfigError(`${section?.source ?? source}: rope type "${rawType}"${what} is not supported (supported: ${ROPE_TYPES.join(', ')})`);
  }
  const type = rawType as RopeType;
  const theta = section?.has('rope_theta') ? section.positive('rope_theta') : top.positive('rope_theta', DEFAULT_THETA);
  const rope: RopeConfig = { type, theta };

  const partial = section?.has('partial_rotary_factor') ? section.positive('partial_rotary_factor') : top.has('partial_rotary_factor') ? top.positive('partial_rotary_factor') : undefined;
  if (partial !== undefined) rope.partialRotaryFactor = partial;

  if (type === 'default' || section === undefined) return rope;
  rope.factor = section.positive('factor');
  if (type === 'llama3') {
    rope.lowFreqFactor = section.positive('low_freq_factor');
    rope.highFreqFactor = section.positive('high_freq_factor');
    rope.originalMaxPositionEmbeddings = section.int('original_max_position_embeddings');
  } else if (type === 'yarn') {
    rope.originalMaxPositionEmbeddings = section.int('original_max_position_embeddings', maxPositionEmbeddings);
    rope.betaFast = section.num('beta_fast', 32);
    rope.betaSlow = section.num('beta_slow', 1);
    if (section.has('mscale')) rope.mscale = section.num('mscale');
    if (section.has('mscale_all_dim')) rope.mscaleAllDim = section.num('mscale_all_dim');
    if (section.has('attention_factor')) rope.attentionFactor = section.positive('attention_factor');
    if (section.has('truncate')) rope.truncate = section.bool('truncate', true);
  } else if (type === 'dynamic' && section.has('original_max_position_embeddings')) {
    rope.originalMaxPositionEmbeddings = section.int('original_max_position_embeddings');
  }
  return rope;
}

/** `rope_parameters` (newer) or else `rope_scaling` (older), when either is an object. */
function ropeSection(json: Json, source: string): { key: string; value: Json } | undefined {
  for (const key of ['rope_parameters', 'rope_scaling']) {
    const v = json[key];
    if (v === undefined || v === null) continue;
    if (!isJsonObject(v)) throw new ConfigError(`${source}: "${key}" must be an object, got ${JSON.stringify(v)}`);
    const nested = Object.keys(v).filter((k) => isJsonObject(v[k]));
    if (nested.length > 0 && v['rope_type'] === undefined && v['type'] === undefined) {
      throw new ConfigError(`${source}: per-layer-type "${key}" (${nested.join(', ')}) is not supported; expected one rope setting for all layers`);
    }
    return { key, value: v };
  }
  return undefined;
}
