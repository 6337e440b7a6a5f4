/**
 * vLLM's `prompt_logprobs` (a request field of both routes): for each prompt token, a map from token id to
 * `{logprob, rank, decoded_token}` holding the prompt token itself and the `k` most likely tokens at that
 * position; the first token has nothing before it, `null`. Completions put the list on each choice, chat at the
 * top of the response. Not with `stream` (vLLM refuses it there too).
 */
import type { Tokenizer } from '@weft/core';
import type { TokenLogprob } from '@weft/engine';
import { badRequest } from './errors.js';
import { tokenString, safeLogprob } from './logprobs.js';
import { MAX_LOGPROBS, optInt, type Body } from './params.js';

export interface PromptLogprob {
  logprob: number;
  rank: number | null;
  decoded_token: string;
}
export type PromptLogprobs = (Record<string, PromptLogprob> | null)[];

/** `prompt_logprobs` of a request: undefined when absent or null; 0..20 (vLLM's max_logprobs); never with stream. */
export function readPromptLogprobs(b: Body, stream: boolean): number | undefined {
  const k = optInt(b, 'prompt_logprobs', { min: 0, max: MAX_LOGPROBS });
  if (k !== undefined && stream) throw badRequest('prompt_logprobs are not available when stream is true', 'prompt_logprobs');
  return k;
}

/** The engine's prompt logprobs (LLM.promptLogprobs, computed with at least `k` top tokens) in vLLM's shape. */
export function promptLogprobsField(tokenizer: Tokenizer | null, lps: (TokenLogprob | null)[], k: number): PromptLogprobs {
  return lps.map((lp) => {
    if (lp === null) return null;
    const out: Record<string, PromptLogprob> = {
      [lp.tokenId]: { logprob: safeLogprob(lp.logprob), rank: lp.rank ?? null, decoded_token: tokenString(tokenizer, lp.tokenId) },
    };
    lp.top.slice(0, k).forEach((t, i) => {
      out[t.tokenId] ??= { logprob: safeLogprob(t.logprob), rank: i + 1, decoded_token: tokenString(tokenizer, t.tokenId) };
    });
    return out;
  });
}
