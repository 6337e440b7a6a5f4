/**
 * From request text to token ids, without stalling the streams: chat
 * templates always render in a worker under limits; prompts up to
 * `offloadChars` are tokenized here (microseconds), longer ones in a
 * tokenizer worker. Text that cannot fit the context is refused by its
 * byte length before any tokenizing (prompt-limits in context.ts).
 */
import type { Tokenizer, TokenizerSpec } from '@weft/core';
import type { ChatMessage, ChatTemplate } from './chat-template.js';
import { PromptWorker } from './prompt-worker.js';

export interface PromptTextOptions {
  templateTimeoutMs: number;
  templateMaxHeapMb: number;
  /** Prompts longer than this many characters are tokenized in the worker (default 16 Ki). */
  offloadChars: number;
}

export class PromptText {
  private readonly templates: PromptWorker;
  private readonly tokenize: PromptWorker | null;

  constructor(
    private readonly tokenizer: Tokenizer | null,
    spec: TokenizerSpec | null,
    private readonly opts: PromptTextOptions,
  ) {
    this.templates = new PromptWorker({ timeoutMs: opts.templateTimeoutMs, maxHeapMb: opts.templateMaxHeapMb, what: 'the chat template', param: 'messages' });
    // The tokenizer's own tables take memory: no tight heap limit; the byte-length check bounds its input.
    this.tokenize = spec ? new PromptWorker({ timeoutMs: 60_000, maxHeapMb: 4096, tokenizer: spec, what: 'tokenizing the prompt', param: 'prompt' }) : null;
  }

  renderChat(template: ChatTemplate, messages: ChatMessage[], opts: { addGenerationPrompt: boolean; extra?: Record<string, unknown> }, maxChars: number): Promise<string> {
    return this.templates.render(template.text, template.context(messages, opts), maxChars);
  }

  async encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    if (text.length > this.opts.offloadChars && this.tokenize) return this.tokenize.encode(text, addSpecialTokens);
    return this.tokenizer!.encode(text, { addSpecialTokens });
  }

  async close(): Promise<void> {
    await Promise.all([this.templates.close(), this.tokenize?.close()]);
  }
}
