/** Engine logprobs in the two OpenAI shapes: completions' parallel lists and chat's per-token objects. */
import type { Tokenizer } from '@weft/core';
import type { TokenLogprob } from '@weft/engine';
import { utf8Bytes, type TokenBytes } from './token-bytes.js';

/** A token's text; `token_id:N` without a tokenizer, as vLLM writes it. */
export function tokenString(tokenizer: Tokenizer | null, id: number): string {
  return tokenizer ? tokenizer.decode([id]) : `token_id:${id}`;
}

export interface CompletionLogprobs {
  tokens: string[];
  /** null: the first prompt token of an echoed prompt (nothing before it to condition on). */
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * `textOffset`: where this delta's text starts in the choice's whole text. `lps` may start with an echoed prompt's
 * logprobs (the engine's `promptLogprobs`): its first token has none, `null`, and is listed by `firstTokenId`.
 */
export function completionLogprobs(tokenizer: Tokenizer | null, lps: (TokenLogprob | null)[], textOffset: number, topN: number, firstTokenId?: number): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = textOffset;
  for (const lp of lps) {
    if (lp === null) {
      if (firstTokenId === undefined) throw new Error('completionLogprobs: a token without logprobs needs its id');
      const tok = tokenString(tokenizer, firstTokenId);
      out.tokens.push(tok);
      out.token_logprobs.push(null);
      out.top_logprobs.push(null);
      out.text_offset.push(offset);
      offset += tok.length;
      continue;
    }
    const tok = tokenString(tokenizer, lp.tokenId);
    out.tokens.push(tok);
    out.token_logprobs.push(safeLogprob(lp.logprob));
    const top: Record<string, number> = {};
    for (const t of lp.top.slice(0, topN)) top[tokenString(tokenizer, t.tokenId)] = safeLogprob(t.logprob);
    // The OpenAI API always lists the sampled token among the top ones ("up to logprobs + 1"), logprobs: 0 too (vLLM).
    top[tok] ??= safeLogprob(lp.logprob);
    out.top_logprobs.push(top);
    out.text_offset.push(offset);
    offset += tok.length;
  }
  return out;
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** `bytes`: the token's own bytes (token-bytes.ts), also where its text alone is a piece of a character (U+FFFD). */
export function chatLogprobs(tokenizer: Tokenizer | null, lps: TokenLogprob[], topN: number, bytes: TokenBytes = utf8Bytes): { content: ChatTokenLogprob[] } {
  const entry = (id: number, logprob: number) => {
    const token = tokenString(tokenizer, id);
    return { token, logprob: safeLogprob(logprob), bytes: bytes(id, token) };
  };
  return {
    content: lps.map((lp) => ({ ...entry(lp.tokenId, lp.logprob), top_logprobs: lp.top.slice(0, topN).map((t) => entry(t.tokenId, t.logprob)) })),
  };
}

/** JSON has no -Infinity; vLLM writes -9999.0 instead. */
export function safeLogprob(x: number): number {
  return Number.isFinite(x) ? x : -9999.0;
}
