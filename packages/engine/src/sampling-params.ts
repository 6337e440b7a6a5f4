/**
 * One set of sampling parameters, close to vLLM's `SamplingParams`: what the
 * caller may give (`SamplingParamsInit`, every field optional) and the
 * validated, defaulted form the engine works with (`SamplingParams`). Every
 * check names the field, as vLLM's `_verify_args` does.
 */
import { RequestError } from './errors.js';

export interface SamplingParamsInit {
  /** Completions per prompt (default 1). */
  n?: number;
  /** 0 = greedy (default 1 in vLLM; weft keeps greedy as its default, as before). */
  temperature?: number;
  /** Nucleus: keep the smallest set of tokens whose probability reaches topP; 1 = off. */
  topP?: number;
  /** Keep the topK most likely tokens; 0 or -1 = off. */
  topK?: number;
  /** Drop tokens whose probability is below minP × the top probability; 0 = off. */
  minP?: number;
  /** Tokens to generate at most (default 16, as vLLM). */
  maxTokens?: number;
  /** Stop when the text contains one of these; the stop string is not returned. */
  stop?: string | string[];
  /** Stop at these token ids (returned, as vLLM). */
  stopTokenIds?: number[];
  /** Seeded sampling: the same tokens whatever else is in the batch, at every layout. */
  seed?: number;
  /** Keep going past end-of-sequence tokens. */
  ignoreEos?: boolean;
  /** Return log-probabilities: the sampled token's plus this many top ones (0 = only the sampled token's). */
  logprobs?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  repetitionPenalty?: number;
  /** weft: also return the logits row each token was sampled from. */
  returnLogits?: boolean;
  /** Token id → bias added to its logit before sampling (greedy too), as vLLM's `logit_bias`. */
  logitBias?: Record<number, number> | ReadonlyMap<number, number>;
  /** EOS and stop tokens cannot be sampled, and stop strings are not checked, before this many tokens (default 0). */
  minTokens?: number;
  /** Keep the matched stop string (or stop token's text) in the output (default false). */
  includeStopStrInOutput?: boolean;
  /** Leave special tokens (BOS, EOS, ...) out of the text (default true, as vLLM). */
  skipSpecialTokens?: boolean;
  /** Generate this many sequences and return the `n` with the highest cumulative logprob (default n, as vLLM v0). */
  bestOf?: number;
}

export interface SamplingParams {
  n: number;
  temperature: number;
  topP: number;
  /** 0 = off. */
  topK: number;
  minP: number;
  maxTokens: number;
  stop: string[];
  stopTokenIds: number[];
  /** Always set: unseeded requests get a random one on the driver. */
  seed: number;
  seeded: boolean;
  ignoreEos: boolean;
  /** null = none. */
  logprobs: number | null;
  presencePenalty: number;
  frequencyPenalty: number;
  repetitionPenalty: number;
  returnLogits: boolean;
  /** `[tokenId, bias]` pairs, ascending ids (structured-clone safe). */
  logitBias: [number, number][];
  minTokens: number;
  /** What `minTokens` masks: the stop token ids, plus the model's EOS ids once the engine adds them (vLLM's `all_stop_token_ids`). */
  allStopTokenIds: number[];
  includeStopStrInOutput: boolean;
  skipSpecialTokens: boolean;
  bestOf: number;
}

/** Largest number of top logprobs a request may ask for (vLLM's max_logprobs default). */
export const MAX_LOGPROBS = 20;

const KNOWN = new Set<string>([
  'n', 'temperature', 'topP', 'topK', 'minP', 'maxTokens', 'stop', 'stopTokenIds', 'seed', 'ignoreEos', 'logprobs',
  'presencePenalty', 'frequencyPenalty', 'repetitionPenalty', 'returnLogits', 'logitBias', 'minTokens', 'includeStopStrInOutput',
  'skipSpecialTokens', 'bestOf',
]);

function bad(field: string, msg: string): never {
  throw new RequestError(`${field} ${msg}`, field);
}

function num(init: SamplingParamsInit, field: keyof SamplingParamsInit, dflt: number, check: (v: number) => string | null): number {
  const v = init[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(field, `must be a finite number, got ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`);
  const why = check(v);
  if (why) bad(field, `${why}, got ${v}`);
  return v;
}

const int = (v: number) => (Number.isInteger(v) ? null : 'must be an integer');

/** Validate and fill in defaults; throws `RequestError` naming the field. */
export function resolveSamplingParams(init: SamplingParamsInit = {}): SamplingParams {
  if (typeof init !== 'object' || init === null || Array.isArray(init)) throw new RequestError('sampling parameters must be an object', 'params');
  for (const k of Object.keys(init)) if (!KNOWN.has(k) && (init as Record<string, unknown>)[k] !== undefined) bad(k, 'is not a sampling parameter');
  const n = num(init, 'n', 1, (v) => int(v) ?? (v < 1 ? 'must be at least 1' : null));
  const temperature = num(init, 'temperature', 0, (v) => (v < 0 ? 'must be non-negative' : null));
  const topP = num(init, 'topP', 1, (v) => (v <= 0 || v > 1 ? 'must be in (0, 1]' : null));
  let topK = num(init, 'topK', 0, (v) => int(v) ?? (v < -1 ? 'must be -1 (off), 0 (off) or at least 1' : null));
  if (topK < 0) topK = 0;
  const minP = num(init, 'minP', 0, (v) => (v < 0 || v > 1 ? 'must be in [0, 1]' : null));
  const maxTokens = num(init, 'maxTokens', 16, (v) => int(v) ?? (v < 1 ? 'must be at least 1' : null));
  const presencePenalty = num(init, 'presencePenalty', 0, (v) => (v < -2 || v > 2 ? 'must be in [-2, 2]' : null));
  const frequencyPenalty = num(init, 'frequencyPenalty', 0, (v) => (v < -2 || v > 2 ? 'must be in [-2, 2]' : null));
  const repetitionPenalty = num(init, 'repetitionPenalty', 1, (v) => (v <= 0 ? 'must be greater than 0' : null));
  const logprobs = init.logprobs === undefined || init.logprobs === null
    ? null
    : num(init, 'logprobs', 0, (v) => int(v) ?? (v < 0 || v > MAX_LOGPROBS ? `must be in [0, ${MAX_LOGPROBS}]` : null));
  const seeded = init.seed !== undefined && init.seed !== null;
  const seed = seeded
    ? num(init, 'seed', 0, (v) => int(v) ?? (Math.abs(v) > Number.MAX_SAFE_INTEGER ? 'is too large' : null))
    : Math.floor(Math.random() * 2 ** 32);
  let stop: string[] = [];
  if (init.stop !== undefined && init.stop !== null) {
    stop = typeof init.stop === 'string' ? [init.stop] : init.stop;
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string')) bad('stop', 'must be a string or a list of strings');
    if (stop.some((s) => s.length === 0)) bad('stop', 'must not contain an empty string');
  }
  const stopTokenIds = init.stopTokenIds ?? [];
  if (!Array.isArray(stopTokenIds) || stopTokenIds.some((t) => !Number.isInteger(t) || t < 0)) bad('stopTokenIds', 'must be a list of non-negative integers');
  for (const f of ['ignoreEos', 'returnLogits', 'includeStopStrInOutput', 'skipSpecialTokens'] as const) {
    if (init[f] !== undefined && init[f] !== null && typeof init[f] !== 'boolean') bad(f, `must be a boolean, got ${JSON.stringify(init[f])}`);
  }
  const minTokens = num(init, 'minTokens', 0, (v) => int(v) ?? (v < 0 ? 'must be non-negative' : v > maxTokens ? `must be at most maxTokens (${maxTokens})` : null));
  const bestOf = num(init, 'bestOf', n, (v) => int(v) ?? (v < n ? `must be at least n (${n})` : null));
  return {
    n, temperature, topP, topK, minP, maxTokens, stop: [...stop], stopTokenIds: [...stopTokenIds], seed: seed >>> 0 === seed ? seed : hashSeed(seed), seeded,
    ignoreEos: init.ignoreEos ?? false, logprobs, presencePenalty, frequencyPenalty, repetitionPenalty, returnLogits: init.returnLogits ?? false,
    logitBias: resolveLogitBias(init.logitBias), minTokens, allStopTokenIds: [...new Set(stopTokenIds)], includeStopStrInOutput: init.includeStopStrInOutput ?? false,
    skipSpecialTokens: init.skipSpecialTokens ?? true, bestOf,
  };
}

/** `{id: bias}` (JSON's string keys or numbers) or a Map → sorted `[id, bias]` pairs; ids checked against the vocabulary by `checkVocab`. */
function resolveLogitBias(v: SamplingParamsInit['logitBias']): [number, number][] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v)) bad('logitBias', `must be an object of token id → bias, got ${JSON.stringify(v)}`);
  const entries: [unknown, unknown][] = v instanceof Map ? [...v.entries()] : Object.entries(v);
  const out: [number, number][] = entries.map(([k, b]) => {
    const id = typeof k === 'number' ? k : /^\d+$/.test(String(k)) ? Number(k) : Number.NaN;
    if (!Number.isSafeInteger(id) || id < 0) bad('logitBias', `keys must be non-negative integer token ids, got ${JSON.stringify(k)}`);
    if (typeof b !== 'number' || !Number.isFinite(b)) bad('logitBias', `values must be finite numbers, got ${JSON.stringify(b)} for token ${id}`);
    return [id, b];
  });
  return out.sort((a, b) => a[0] - b[0]);
}

/** Checks that need the model: token ids the request names must be in its vocabulary. */
export function checkVocab(p: SamplingParams, vocabSize: number): void {
  const outside = (ids: number[]) => ids.filter((t) => t >= vocabSize);
  const lb = outside(p.logitBias.map(([t]) => t));
  if (lb.length) bad('logitBias', `token id(s) ${lb.slice(0, 5).join(', ')} are outside the vocabulary [0, ${vocabSize})`);
}

/** The engine's copy for one model: `minTokens` also masks its EOS ids (vLLM adds them to `all_stop_token_ids` whatever `ignore_eos` says). */
export function withEosTokenIds(p: SamplingParams, eosTokenIds: readonly number[]): SamplingParams {
  return { ...p, allStopTokenIds: [...new Set([...p.stopTokenIds, ...eosTokenIds])].sort((a, b) => a - b) };
}

/** Fold any safe integer into 32 bits. */
function hashSeed(seed: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  return (Math.imul(hi, 0x9e3779b1) ^ lo) >>> 0;
}

/** True when the sampler needs the token history (penalties). */
export function usesPenalties(p: SamplingParams): boolean {
  return p.presencePenalty !== 0 || p.frequencyPenalty !== 0 || p.repetitionPenalty !== 1;
}

/** True when the sampler changes logits before picking (logit bias, min tokens) or needs the sampled token's logprob (best of). */
export function usesLogitsProcessors(p: SamplingParams): boolean {
  return p.logitBias.length > 0 || p.minTokens > 0 || p.bestOf > p.n;
}

/** Greedy, nothing else: what logits-only steps and the tests' references use. */
export const GREEDY: SamplingParams = resolveSamplingParams({ temperature: 0, seed: 0 });

