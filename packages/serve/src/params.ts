/**
 * Reading request bodies: each field checked for type and range, each
 * failure a 400 naming the parameter (`param`), as the OpenAI API and vLLM
 * answer. Which fields exist at all is fields.ts's table.
 */
import type { SamplingParamsInit } from '@weft/engine';
import { badRequest, JSON_BODY } from './errors.js';

export type Body = Record<string, unknown>;

export function asBody(body: unknown): Body {
  // A string is a body Fastify read as text/plain (what a browser's no-preflight fetch sends): it was never parsed.
  if (typeof body === 'string') throw badRequest(`${JSON_BODY} (this one came as text)`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  return body as Body;
}

export function optNumber(b: Body, key: string, range: { min?: number; max?: number; minExclusive?: boolean } = {}): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`${key} must be a number, got ${describe(v)}`, key);
  if (range.min !== undefined && (range.minExclusive ? v <= range.min : v < range.min)) {
    throw badRequest(`${key} must be ${range.minExclusive ? 'greater than' : 'at least'} ${range.min}, got ${v}`, key);
  }
  if (range.max !== undefined && v > range.max) throw badRequest(`${key} must be at most ${range.max}, got ${v}`, key);
  return v;
}

export function optInt(b: Body, key: string, range: { min?: number; max?: number } = {}): number | undefined {
  const v = optNumber(b, key, range);
  if (v !== undefined && !Number.isInteger(v)) throw badRequest(`${key} must be a whole number, got ${v}`, key);
  return v;
}

export function optBool(b: Body, key: string): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`${key} must be true or false, got ${describe(v)}`, key);
  return v;
}

export function optString(b: Body, key: string): string | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`${key} must be a string, got ${describe(v)}`, key);
  return v;
}

export function tokenIdList(v: unknown, key: string, vocabSize: number | undefined): number[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isInteger(x))) throw badRequest(`${key} must be a list of token ids (whole numbers)`, key);
  const bad = (v as number[]).find((x) => x < 0 || (vocabSize !== undefined && x >= vocabSize));
  // "out of vocabulary", as vLLM words it (clients match on it).
  if (bad !== undefined) throw badRequest(`${key}: token id ${bad} is out of vocabulary (the vocabulary has ${vocabSize ?? '?'} tokens: 0..${vocabSize === undefined ? '?' : vocabSize - 1})`, key);
  return v as number[];
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

/** Sampling defaults read from the model's generation_config.json (vLLM's `--generation-config auto`). */
export interface SamplingDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
}

export interface CommonParams {
  /** Per prompt: `n` and `bestOf` included; the engine seeds completion i with seed + i. */
  sampling: SamplingParamsInit;
  n: number;
  stream: boolean;
  includeUsage: boolean;
  continuousUsage: boolean;
  returnTokenIds: boolean;
}

export const MAX_N = 16;
export const MAX_LOGPROBS = 20;
/** Stop strings per request: a list this long is already far past any real use (300 k of them overflowed the stack). */
export const MAX_STOP = 256;
export const MAX_STOP_TOKEN_IDS = 1024;

/** The fields completions and chat share. Token limits and logprobs differ per route and are read there. */
export function commonParams(b: Body, defaults: SamplingDefaults, vocabSize: number | undefined): CommonParams {
  const stop = b.stop;
  let stopList: string[] | undefined;
  if (typeof stop === 'string') stopList = [stop];
  else if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) stopList = stop as string[];
  else if (stop !== undefined && stop !== null) throw badRequest('stop must be a string or a list of strings', 'stop');
  if (stopList && stopList.length > MAX_STOP) throw badRequest(`at most ${MAX_STOP} stop strings, got ${stopList.length}`, 'stop');
  if (stopList && stopList.some((s) => s.length === 0)) throw badRequest('stop strings must not be empty', 'stop');
  const stopTokenIds = b.stop_token_ids === undefined || b.stop_token_ids === null ? undefined : tokenIdList(b.stop_token_ids, 'stop_token_ids', vocabSize);
  if (stopTokenIds && stopTokenIds.length > MAX_STOP_TOKEN_IDS) throw badRequest(`at most ${MAX_STOP_TOKEN_IDS} stop_token_ids, got ${stopTokenIds.length}`, 'stop_token_ids');
  const topK = optInt(b, 'top_k', { min: -1 });
  const streamOptions = b.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && (typeof streamOptions !== 'object' || Array.isArray(streamOptions))) {
    throw badRequest('stream_options must be an object', 'stream_options');
  }
  const stream = optBool(b, 'stream') ?? false;
  const so = (streamOptions ?? {}) as Body;
  for (const k of Object.keys(so)) if (k !== 'include_usage' && k !== 'continuous_usage_stats') throw badRequest(`stream_options.${k} is not supported (include_usage, continuous_usage_stats)`, 'stream_options');
  if (streamOptions && !stream) throw badRequest('stream_options is only allowed when stream is true', 'stream_options');
  // vLLM takes any int64; a JSON number past 2^53 has already lost its low bits here (2^63 − 1 and 2^63 read alike),
  // so such a seed is refused rather than silently merged with its neighbours. The engine folds the rest into its
  // generator's 32 bits, high bits included.
  const seed = optInt(b, 'seed');
  if (seed !== undefined && !Number.isSafeInteger(seed)) throw badRequest(`seed must be an integer within ±${Number.MAX_SAFE_INTEGER} (JSON numbers beyond 2^53 lose their low bits), got ${seed}`, 'seed');
  const n = optInt(b, 'n', { min: 1, max: MAX_N }) ?? 1;
  const bestOf = optInt(b, 'best_of', { min: 1, max: MAX_N });
  if (bestOf !== undefined && bestOf < n) throw badRequest(`best_of must be at least n (${n}), got ${bestOf}`, 'best_of');
  if (bestOf !== undefined && bestOf > n && stream) throw badRequest('best_of greater than n cannot stream (the best are known only at the end)', 'best_of');
  const sampling: SamplingParamsInit = {
    n,
    ...(bestOf !== undefined ? { bestOf } : {}),
    temperature: optNumber(b, 'temperature', { min: 0 }) ?? defaults.temperature ?? 1,
    topP: optNumber(b, 'top_p', { min: 0, max: 1, minExclusive: true }) ?? defaults.topP ?? 1,
    topK: topK === undefined ? (defaults.topK ?? 0) : topK < 0 ? 0 : topK,
    minP: optNumber(b, 'min_p', { min: 0, max: 1 }) ?? defaults.minP ?? 0,
    presencePenalty: optNumber(b, 'presence_penalty', { min: -2, max: 2 }) ?? 0,
    frequencyPenalty: optNumber(b, 'frequency_penalty', { min: -2, max: 2 }) ?? 0,
    repetitionPenalty: optNumber(b, 'repetition_penalty', { min: 0, minExclusive: true }) ?? defaults.repetitionPenalty ?? 1,
    ignoreEos: optBool(b, 'ignore_eos') ?? false,
    minTokens: optInt(b, 'min_tokens', { min: 0 }) ?? 0,
    includeStopStrInOutput: optBool(b, 'include_stop_str_in_output') ?? false,
    skipSpecialTokens: optBool(b, 'skip_special_tokens') ?? true,
    ...(seed === undefined ? {} : { seed }),
    ...(stopList ? { stop: stopList } : {}),
    ...(stopTokenIds ? { stopTokenIds } : {}),
    ...logitBias(b, vocabSize),
  };
  return {
    sampling,
    n,
    stream,
    includeUsage: optBool(so, 'include_usage') ?? false,
    // vLLM: usage in every chunk only when usage is asked for at all (continuous_usage_stats alone sends none).
    continuousUsage: (optBool(so, 'include_usage') ?? false) && (optBool(so, 'continuous_usage_stats') ?? false),
    returnTokenIds: optBool(b, 'return_token_ids') ?? false,
  };
}

/** OpenAI's `logit_bias`: `{"token id": bias}`, bias in -100..100. */
function logitBias(b: Body, vocabSize: number | undefined): { logitBias?: Record<number, number> } {
  const v = b.logit_bias;
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw badRequest('logit_bias must be an object of token id → bias', 'logit_bias');
  const out: Record<number, number> = {};
  // Every key that is not a token id at once, as vLLM reports them.
  const notIds = Object.keys(v).filter((k) => !/^\d+$/.test(k));
  if (notIds.length > 0) throw badRequest(`logit_bias: ${notIds.map((k) => JSON.stringify(k)).join(', ')} ${notIds.length > 1 ? 'are not token ids' : 'is not a token id'}`, 'logit_bias');
  for (const [k, bias] of Object.entries(v as Record<string, unknown>)) {
    const id = Number(k);
    if (vocabSize !== undefined && id >= vocabSize) throw badRequest(`logit_bias: token id ${id} is out of vocabulary (the vocabulary has ${vocabSize} tokens)`, 'logit_bias');
    if (typeof bias !== 'number' || !Number.isFinite(bias) || bias < -100 || bias > 100) throw badRequest(`logit_bias: the bias of token ${id} must be a number in -100..100, got ${JSON.stringify(bias)}`, 'logit_bias');
    out[id] = bias;
  }
  return { logitBias: out };
}
