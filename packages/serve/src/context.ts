/**
 * What every route shares: the engine, the model's name, template and
 * limits, metrics, and admission: each generation request is checked against
 * the engine's health and the bounded waiting queue, gets an AbortSignal that
 * fires when its client goes away, and is tracked so shutdown can drain it.
 */
import type { FastifyReply } from 'fastify';
import type { ChatTemplate } from './chat-template.js';
import type { EngineClient, TokenizerLike } from './engine-client.js';
import { ApiError } from './errors.js';
import type { ServerMetrics } from './metrics.js';
import type { SamplingDefaults } from './params.js';

export interface Admission {
  signal: AbortSignal;
  /** Call when the response is complete (idempotent). */
  end(): void;
}

export class ServeContext {
  private readonly active = new Set<AbortController>();
  /** Engine requests (choices) admitted and not yet ended. */
  private inFlight = 0;
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
    readonly maxWaitingRequests: number,
  ) {}

  get tokenizer(): TokenizerLike | null {
    return this.llm.tokenizer;
  }

  get activeRequests(): number {
    return this.active.size;
  }

  /** A model name in a request must be ours (or absent). */
  checkModel(model: unknown): void {
    if (model === undefined || model === null) return;
    if (typeof model !== 'string') throw new ApiError(400, 'model must be a string', 'model');
    if (model !== this.model) throw new ApiError(404, `The model \`${model}\` does not exist. This server serves \`${this.model}\`.`, 'model', 'not_found_error', 'model_not_found');
  }

  /** Admit a request of `choices` engine requests, or throw 503 / 429. */
  admit(reply: FastifyReply, choices: number): Admission {
    const labels = { model_name: this.model };
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
    const waiting = Math.max(stats.waiting, this.inFlight - stats.running);
    if (waiting >= this.maxWaitingRequests) {
      this.metrics.rejected.inc({ ...labels, status: '429' });
      throw new ApiError(429, `the waiting queue is full (${waiting} requests waiting, at most ${this.maxWaitingRequests}): retry later`);
    }
    const ctl = new AbortController();
    this.active.add(ctl);
    this.inFlight += choices;
    this.metrics.inFlight.set(labels, this.inFlight);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.active.delete(ctl);
      this.inFlight -= choices;
      this.metrics.inFlight.set(labels, this.inFlight);
      reply.raw.off('close', onClose);
    };
    // The response closed before it was written in full: the client went away.
    const onClose = () => {
      if (!reply.raw.writableFinished) ctl.abort(new Error('client disconnected'));
      end();
    };
    reply.raw.on('close', onClose);
    return { signal: ctl.signal, end };
  }

  /** Abort every request still running (shutdown past its grace period). */
  abortAll(reason: string): void {
    for (const c of this.active) c.abort(new Error(reason));
  }
}
