/**
 * Incremental detokenization (vLLM's `detokenize_incrementally`): each new
 * token decodes a short window — a few tokens of context before the text
 * already shown, plus the new ones — never the whole output, so a token
 * costs amortised O(1). A window ending in U+FFFD (a UTF-8 character cut
 * between byte-level tokens) shows nothing until the character completes.
 */
import type { DecodeOptions, Tokenizer } from '@weft/core';

/** Context tokens decoded before the new ones (spaces and merges at the boundary come out right). */
const CONTEXT = 5;

export class IncrementalDetokenizer {
  private readonly tokens: number[];
  private prefixOffset: number;
  private readOffset: number;
  /** All output text so far (what `generate` returns, before stop strings are cut). */
  text = '';

  constructor(
    private readonly tokenizer: Tokenizer | null,
    promptTokenIds: readonly number[],
    /** vLLM's `skip_special_tokens` (default false here, as the tokenizer's; the output processor passes the request's). */
    private readonly options: DecodeOptions = {},
  ) {
    this.tokens = promptTokenIds.slice(-CONTEXT);
    this.prefixOffset = 0;
    this.readOffset = this.tokens.length;
  }

  /** Add a token; returns the new text it completes ('' while a character is incomplete). */
  push(token: number): string {
    if (!this.tokenizer) {
      // No tokenizer: ids as text, space separated.
      const d = (this.text ? ' ' : '') + String(token);
      this.text += d;
      return d;
    }
    this.tokens.push(token);
    const prefix = this.tokenizer.decode(this.tokens.slice(this.prefixOffset, this.readOffset), this.options);
    const full = this.tokenizer.decode(this.tokens.slice(this.prefixOffset), this.options);
    if (full.length > prefix.length && !full.endsWith('\uFFFD')) {
      const delta = full.slice(prefix.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.tokens.length;
      this.text += delta;
      this.compact();
      return delta;
    }
    return '';
  }

  /** Drop tokens no window will read again, so memory stays O(window). */
  private compact(): void {
    if (this.prefixOffset > 64) {
      this.tokens.splice(0, this.prefixOffset);
      this.readOffset -= this.prefixOffset;
      this.prefixOffset = 0;
    }
  }

  /** At the end: whatever is still held back (an incomplete character shows as U+FFFD, as a full decode would). */
  flush(): string {
    if (!this.tokenizer || this.readOffset === this.tokens.length) return '';
    const prefix = this.tokenizer.decode(this.tokens.slice(this.prefixOffset, this.readOffset), this.options);
    const full = this.tokenizer.decode(this.tokens.slice(this.prefixOffset), this.options);
    const delta = full.startsWith(prefix) ? full.slice(prefix.length) : '';
    this.prefixOffset = this.readOffset = this.tokens.length;
    this.text += delta;
    return delta;
  }
}
