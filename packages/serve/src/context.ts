/**
 * What every route shares: the engine, the model's name, template and
 * limits, metrics, and admission: each generation request is checked against
 * the engine's health and the bounded waiting queue, counted in engine
 * sequences (prompts × n) while the engine holds them (not while a slow
 * client reads its response), gets an AbortSignal that fires when its client
 * goes away, and is tracked so shutdown can drain it.
 */
import type { FastifyReply } from 'fastify';
import type { ChatTemplate } from './chat-template.js';
import type { Tokenizer } from '@weft/core';
import type { EngineClient } from './engine-client.js';
import { ApiError, badRequest } from './errors.js';
import type { ServerMetrics } from './metrics.js';
import type { PromptText } from './prompt-text.js';
import type { SamplingDefaults } from './params.js';
import { utf8Bytes, type TokenBytes } from './token-bytes.js';

export interface Admission {
  signal: AbortSignal;
  /** The engine is done with `count` of this request's sequences (finished, aborted or failed). */
  release(count: number): void;
  /** Call when the response is complete (idempotent); releases whatever the engine still held. */
  end(): void;
}

export interface Limits {
  maxWaitingRequests: number;
  /** Largest response a request may ask for (estimated from max_tokens, sequences and logprobs). */
  maxResponseBytes: number;
  /** A client that takes no bytes of its response for this long is disconnected. */
  writeTimeoutMs: number;
}

export class ServeContext {
  private readonly active = new Set<AbortController>();
  /** Engine sequences admitted whose engine streams have not ended. */
  private held = 0;
  draining = false;
  readonly created = Math.floor(Date.now() / 1000);

  constructor(
    readonly llm: EngineClient,
    readonly model: string,
    readonly root: string,
    readonly template: ChatTemplate | null,
    readonly metrics: ServerMetrics,
    readonly defaults: SamplingDefaults,
    readonly vocabSize: number | undefined,
    readonly limits: Limits,
    readonly text: PromptText,
    /** OpenAI's `system_fingerprint`: this server's build and model, so clients can tell when it changes. */
    readonly systemFingerprint: string,
    /** Chat logprobs' `bytes` of a token (token-bytes.ts). */
    readonly tokenBytes: TokenBytes = utf8Bytes,
  ) {}

  /**
   * Text longer than maxModelLen × (the most bytes one token stands for) has more tokens than the context
   * holds: refuse it by its length, before spending any time tokenizing it.
   */
  checkTextFits(text: string, param: string): void {
    const perToken = this.tokenizer?.maxTokenBytes;
    if (perToken === undefined) return;
    const limit = this.llm.maxModelLen * perToken;
    // Characters first: a UTF-16 unit is at least one UTF-8 byte, so this spares measuring most texts.
    if (text.length <= limit / 3) return;
    const bytes = Buffer.byteLength(text);
    if (bytes > limit) {
      throw badRequest(`${param} is ${bytes} bytes: more tokens than this model's context of ${this.llm.maxModelLen} (a token of this tokenizer is at most ${perToken} bytes)`, param);
    }
  }

  get tokenizer(): Tokenizer | null {
    return this.llm.tokenizer;
  }

  get activeRequests(): number {
    return this.active.size;
  }

  /** Sequences the engine holds for this server's requests. */
  get heldSequences(): number {
    return this.held;
  }

  /** A model name in a request must be ours (or absent). */
  checkModel(model: unknown): void {
    if (model === undefined || model === null) return;
    if (typeof model !== 'string') throw new ApiError(400, 'model must be a string', 'model');
    if (model !== this.model) throw new ApiError(404, `The model \`${model}\` does not exist. This server serves \`${this.model}\`.`, 'model', 'not_found_error', 'model_not_found');
  }

  /**
   * The response a request may grow to, checked before it runs: per generated token its text and id
   * (~16 B) and, with logprobs, each top entry (~26 B: measured 541 B per token at 20).
   */
  checkResponseSize(sequences: number, maxTokens: number, logprobs: number | undefined, param: string): void {
    const perToken = 16 + (logprobs === undefined ? 0 : 26 * (logprobs + 1));
    const bytes = sequences * maxTokens * perToken;
    if (bytes > this.limits.maxResponseBytes) {
      throw badRequest(
        `this request could produce a response of ~${(bytes / 2 ** 20).toFixed(0)} MiB (${sequences} sequences × ${maxTokens} tokens × ~${perToken} B), more than this server sends (${(this.limits.maxResponseBytes / 2 ** 20).toFixed(0)} MiB): lower ${param}, n, logprobs or the number of prompts`,
        param,
      );
    }
  }

  /** A request of more sequences than the queue holds could never be admitted: 400, not 429. */
  checkSequences(sequences: number): void {
    const max = this.limits.maxWaitingRequests;
    if (sequences > max) {
      throw badRequest(`this request asks for ${sequences} sequences (prompts × n, or × best_of), more than this server queues (--max-waiting-requests ${max})`, 'n');
    }
  }

  /** Admit a request of `sequences` engine sequences (prompts × best_of), or throw 503 / 429 / 400. */
  admit(reply: FastifyReply, sequences: number): Admission {
    const labels = { model_name: this.model };
    const max = this.limits.maxWaitingRequests;
    this.checkSequences(sequences);
    if (this.draining) {
      this.metrics.rejected.inc({ ...labels, status: '503' });
      throw new ApiError(503, 'the server is shutting down');
    }
    const h = this.llm.health();
    if (!h.ok) {
      this.metrics.rejected.inc({ ...labels, status: '503' });
      throw new ApiError(503, `the engine is not running: ${h.error}`);
    }
    const stats = this.llm.stats();
    // Sequences the engine has not scheduled yet, ours included before its next step picks them up.
    const waiting = Math.max(stats.waiting, this.held - stats.running);
    if (waiting + sequences > max) {
      this.metrics.rejected.inc({ ...labels, status: '429' });
      throw new ApiError(429, `the waiting queue is full (${waiting} sequences waiting, this request adds ${sequences}, at most ${max}): retry later`);
    }
    const ctl = new AbortController();
    this.active.add(ctl);
    let mine = sequences;
    this.held += mine;
    this.metrics.inFlight.set(labels, this.active.size);
    const release = (count: number) => {
      const n = Math.min(count, mine);
      mine -= n;
      this.held -= n;
    };
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      release(mine);
      this.active.delete(ctl);
      this.metrics.inFlight.set(labels, this.active.size);
      reply.raw.off('close', onClose);
    };
    // The response closed before it was written in full: the client went away.
    const onClose = () => {
      if (!reply.raw.writableFinished) ctl.abort(new Error('client disconnected'));
      end();
    };
    reply.raw.on('close', onClose);
    return { signal: ctl.signal, release, end };
  }

  /** Abort every request still running (shutdown past its grace period). */
  abortAll(reason: string): void {
    for (const c of this.active) c.abort(new Error(reason));
  }
}
