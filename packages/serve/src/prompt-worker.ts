/**
 * Prompt text work that must not stall the event loop the streams run on:
 * chat templates (Jinja written by whoever made the model, or given with
 * --chat-template: `range(100000000)` in one froze /health and crashed the
 * server) and tokenizing long prompts. Each job runs in a worker thread
 * under a time limit and a heap limit; a job past either fails with a 400
 * naming the limit, the worker is replaced, and the server keeps serving.
 * The worker is plain JavaScript (no build step, no TypeScript loader): it
 * loads the same libraries the main thread uses, from their resolved paths.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { TokenizerSpec } from '@weft/core';
import { ApiError } from './errors.js';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Template } = require(workerData.jinja);
let tokenizer = null;
if (workerData.tokenizer) {
  const m = require(workerData.tokenizer.module);
  tokenizer = new (m.Tokenizer || m.default.Tokenizer)(workerData.tokenizer.json, workerData.tokenizer.options);
}
const templates = new Map();
parentPort.on('message', (job) => {
  try {
    let result;
    if (job.op === 'render') {
      let t = templates.get(job.template);
      if (!t) { t = new Template(job.template); templates.set(job.template, t); }
      result = t.render(job.context);
      if (result.length > job.maxChars) throw new Error('it wrote ' + result.length + ' characters, more than ' + job.maxChars);
    } else {
      result = tokenizer.encode(job.text, { add_special_tokens: job.addSpecialTokens }).ids;
    }
    parentPort.postMessage({ ok: true, result });
  } catch (e) {
    parentPort.postMessage({ ok: false, message: String((e && e.message) || e) });
  }
});
`;

export interface PromptWorkerOptions {
  /** What one job may take (default 10 s). */
  timeoutMs: number;
  /** The worker's heap (default 512 MiB). */
  maxHeapMb: number;
  /** Build this tokenizer in the worker (for `encode`). */
  tokenizer?: TokenizerSpec;
  /** What the job is, for messages: 'the chat template' or 'tokenizing the prompt'. */
  what: string;
  /** The field a failure is blamed on. */
  param: string;
}

interface Job {
  message: Record<string, unknown>;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** One worker thread running one job at a time; a job over its limits kills it, the next job gets a fresh one. */
export class PromptWorker {
  private worker: Worker | null = null;
  private current: (Job & { timer: NodeJS.Timeout }) | null = null;
  private readonly queue: Job[] = [];
  private closed = false;

  constructor(private readonly opts: PromptWorkerOptions) {}

  render(template: string, context: Record<string, unknown>, maxChars: number): Promise<string> {
    return this.run({ op: 'render', template, context, maxChars }) as Promise<string>;
  }

  encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    return this.run({ op: 'encode', text, addSpecialTokens }) as Promise<number[]>;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new ApiError(503, 'the server is shutting down'));
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private run(message: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new ApiError(503, 'the server is shutting down'));
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      this.pump();
    });
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { jinja: createRequire(import.meta.url).resolve('@huggingface/jinja'), tokenizer: this.opts.tokenizer },
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb },
      name: 'weft prompt worker',
    });
    // Idle workers must not hold the process open.
    w.unref();
    w.on('message', (m: { ok: boolean; result?: unknown; message?: string }) => {
      const job = this.finish();
      if (!job) return;
      if (m.ok) job.resolve(m.result);
      else job.reject(new ApiError(400, `${this.opts.what} failed: ${m.message}`, this.opts.param));
      this.pump();
    });
    const lost = (why: string) => {
      if (this.worker !== w) return;
      this.worker = null;
      const job = this.finish();
      job?.reject(new ApiError(400, `${this.opts.what} ${why}`, this.opts.param));
      this.pump();
    };
    w.on('error', (e: Error & { code?: string }) =>
      lost(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `needed more than ${this.opts.maxHeapMb} MiB of memory` : `failed: ${e.message}`),
    );
    w.on('exit', () => lost('stopped unexpectedly'));
    return w;
  }

  private finish(): Job | null {
    const job = this.current;
    if (!job) return null;
    clearTimeout(job.timer);
    this.current = null;
    this.worker?.unref();
    return job;
  }

  private pump(): void {
    if (this.current || this.closed) return;
    const job = this.queue.shift();
    if (!job) return;
    const w = (this.worker ??= this.spawn());
    w.ref();
    const timer = setTimeout(() => {
      // Past its time: the only way to stop synchronous work in a thread is to end the thread.
      const j = this.finish();
      this.worker = null;
      void w.terminate();
      j?.reject(new ApiError(400, `${this.opts.what} took longer than ${this.opts.timeoutMs} ms`, this.opts.param));
      this.pump();
    }, this.opts.timeoutMs);
    this.current = { ...job, timer };
    w.postMessage(job.message);
  }
}
