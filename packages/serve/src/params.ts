/**
 * Reading request bodies: each field checked for type and range, each
 * failure a 400 naming the parameter (`param`), as the OpenAI API and vLLM
 * answer. Unknown fields are ignored, as vLLM does.
 */
import { badRequest } from './errors.js';
import type { SamplingParamsInit } from './engine-client.js';

export type Body = Record<string, unknown>;

export function asBody(body: unknown): Body {
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
  if (bad !== undefined) throw badRequest(`${key}: token id ${bad} is out of range (the vocabulary has ${vocabSize ?? '?'} tokens: 0..${vocabSize === undefined ? '?' : vocabSize - 1})`, key);
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
  sampling: SamplingParamsInit;
  n: number;
  stream: boolean;
  includeUsage: boolean;
  returnTokenIds: boolean;
  /** Explicit seed, or undefined (then every choice gets a fresh random one). */
  seed: number | undefined;
}

export const MAX_N = 16;
export const MAX_LOGPROBS = 20;

/** The fields completions and chat share. Token limits and logprobs differ per route and are read there. */
export function commonParams(b: Body, defaults: SamplingDefaults): CommonParams {
  const stop = b.stop;
  let stopList: string[] | undefined;
  if (typeof stop === 'string') stopList = [stop];
  else if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) stopList = stop as string[];
  else if (stop !== undefined && stop !== null) throw badRequest('stop must be a string or a list of strings', 'stop');
  if (stopList && stopList.some((s) => s.length === 0)) throw badRequest('stop strings must not be empty', 'stop');
  const stopTokenIds = b.stop_token_ids === undefined || b.stop_token_ids === null ? undefined : tokenIdList(b.stop_token_ids, 'stop_token_ids', undefined);
  const topK = optInt(b, 'top_k', { min: -1 });
  const streamOptions = b.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && (typeof streamOptions !== 'object' || Array.isArray(streamOptions))) {
    throw badRequest('stream_options must be an object', 'stream_options');
  }
  const stream = optBool(b, 'stream') ?? false;
  const includeUsage = streamOptions ? optBool(streamOptions as Body, 'include_usage') : undefined;
  if (streamOptions && !stream) throw badRequest('stream_options is only allowed when stream is true', 'stream_options');
  const seed = optInt(b, 'seed', { min: -(2 ** 63), max: 2 ** 64 });
  const sampling: SamplingParamsInit = {
    temperature: optNumber(b, 'temperature', { min: 0 }) ?? defaults.temperature ?? 1,
    topP: optNumber(b, 'top_p', { min: 0, max: 1, minExclusive: true }) ?? defaults.topP ?? 1,
    topK: topK === undefined ? (defaults.topK ?? 0) : topK < 0 ? 0 : topK,
    minP: optNumber(b, 'min_p', { min: 0, max: 1 }) ?? defaults.minP ?? 0,
    presencePenalty: optNumber(b, 'presence_penalty', { min: -2, max: 2 }) ?? 0,
    frequencyPenalty: optNumber(b, 'frequency_penalty', { min: -2, max: 2 }) ?? 0,
    repetitionPenalty: optNumber(b, 'repetition_penalty', { min: 0, minExclusive: true }) ?? defaults.repetitionPenalty ?? 1,
    ignoreEos: optBool(b, 'ignore_eos') ?? false,
    ...(stopList ? { stop: stopList } : {}),
    ...(stopTokenIds ? { stopTokenIds } : {}),
  };
  return {
    sampling,
    n: optInt(b, 'n', { min: 1, max: MAX_N }) ?? 1,
    stream,
    includeUsage: includeUsage ?? false,
    returnTokenIds: optBool(b, 'return_token_ids') ?? false,
    seed: seed === undefined ? undefined : Number(BigInt.asUintN(32, BigInt(seed))),
  };
}

/** The seed of choice `i`: the request's seed plus i (so n > 1 samples differ), else a random one. */
export function choiceSeed(seed: number | undefined, i: number): number {
  return seed === undefined ? Math.floor(Math.random() * 2 ** 32) : (seed + i) >>> 0;
}
