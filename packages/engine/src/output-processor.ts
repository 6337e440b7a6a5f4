/**
 * What the driver does with each sampled token (vLLM's output processor):
 * append it, detokenize incrementally, check stop conditions (EOS, stop token
 * ids, stop strings, max tokens), and hand the caller a delta. Stop strings and
 * stop tokens (EOS included) are not returned unless `includeStopStrInOutput`;
 * text that could be the start of one is held back until it is known not to be.
 */
import type { Tokenizer } from '@weft/core';
import { IncrementalDetokenizer } from './detokenizer.js';
import type { FinishReason, Request } from './request.js';
import type { TokenLogprob } from './sampler.js';

export interface RequestDelta {
  tokenIds: number[];
  text: string;
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | null;
}

export class RequestOutputState {
  readonly detok: IncrementalDetokenizer;
  /** Output text already given to the caller. */
  private emitted = 0;
  private readonly holdBack: number;
  /** Final text (stop string cut), once finished. */
  finalText: string | null = null;
  readonly logprobs: TokenLogprob[] = [];
  readonly logits: Float32Array[] = [];
  /** Sum of the sampled tokens' logprobs (known when logprobs or bestOf ask for them). */
  cumulativeLogprob = 0;

  constructor(
    readonly req: Request,
    tokenizer: Tokenizer | null,
    private readonly eosTokenIds: readonly number[],
  ) {
    this.detok = new IncrementalDetokenizer(tokenizer, req.promptTokenIds, { skipSpecialTokens: req.params.skipSpecialTokens });
    // Text that could start a stop string waits until it cannot; kept stop strings need no wait (vLLM's stop_buffer_length).
    this.holdBack = req.params.includeStopStrInOutput ? 0 : Math.max(0, ...req.params.stop.map((s) => s.length - 1));
  }

  get text(): string {
    return this.finalText ?? this.detok.text;
  }

  /**
   * Record a sampled token. Returns the delta and, if the request must stop,
   * why (the caller frees it in the scheduler).
   */
  accept(token: number, logprob?: TokenLogprob, logits?: Float32Array): { delta: RequestDelta; finish: FinishReason | null } {
    const { req } = this;
    const p = req.params;
    req.appendOutput(token);
    if (logprob) {
      this.cumulativeLogprob += logprob.logprob;
      if (p.logprobs !== null) this.logprobs.push(logprob);
    }
    if (logits) this.logits.push(logits);
    let finish: FinishReason | null = null;
    const before = this.detok.text.length;
    // vLLM v1: stop tokens count from minTokens output tokens on, stop strings after it (the sampler masks stop tokens before it).
    const count = req.outputTokenIds.length;
    if (count >= p.minTokens && ((!p.ignoreEos && this.eosTokenIds.includes(token)) || p.stopTokenIds.includes(token))) {
      // A stop token is never text (vLLM does not detokenize it) unless the caller keeps stop strings.
      finish = 'stop';
      req.stopReason = token;
      if (p.includeStopStrInOutput) this.detok.push(token);
    } else {
      this.detok.push(token);
      if (count > p.minTokens && p.stop.length) this.checkStopStrings(before);
      if (this.finalText !== null) finish = 'stop';
    }
    if (!finish && req.outputTokenIds.length >= p.maxTokens) finish = 'length';
    if (finish && this.finalText === null) {
      this.detok.flush();
      this.finalText = this.detok.text;
    }
    return { delta: this.delta(token, finish, logprob), finish };
  }

  /** Only the new text (and a stop string's length before it) can hold a new match; the earliest match wins. */
  private checkStopStrings(before: number): void {
    const p = this.req.params;
    const text = this.detok.text;
    let at = -1;
    let which = '';
    for (const s of p.stop) {
      const i = text.indexOf(s, Math.max(0, before - s.length + 1));
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    if (at < 0) return;
    this.finalText = text.slice(0, p.includeStopStrInOutput ? at + which.length : at);
    this.req.stopReason = which;
  }

  /** The request ended without a token (abort): what is left to say. */
  end(reason: FinishReason): RequestDelta {
    if (this.finalText === null) {
      this.detok.flush();
      this.finalText = this.detok.text;
    }
    return { ...this.textDelta(true), tokenIds: [], finishReason: reason };
  }

  private delta(token: number, finish: FinishReason | null, logprob?: TokenLogprob): RequestDelta {
    const d: RequestDelta = { tokenIds: [token], text: this.textDelta(finish !== null).text, finishReason: finish };
    if (logprob && this.req.params.logprobs !== null) d.logprobs = [logprob];
    return d;
  }

  private textDelta(final: boolean): { text: string } {
    const text = this.text;
    const upTo = final ? text.length : Math.max(this.emitted, text.length - this.holdBack);
    const out = text.slice(this.emitted, upTo);
    this.emitted = Math.max(this.emitted, upTo);
    return { text: out };
  }
}
