/**
 * Prompt text work that must not stall the event loop the streams run on:
 * chat templates (Jinja written by whoever made the model, or given with
 * --chat-template: `range(100000000)` in one froze /health and crashed the
 * server) and tokenizing long prompts. Each job runs in a child process under
 * a time limit and a heap limit; a job past either fails with a 400 naming the
 * limit, the child is replaced, and the server keeps serving.
 *
 * A child process, not a worker thread: a worker's `resourceLimits` stop a
 * heap that grows step by step, but one large allocation past the limit
 * (`range(100000000)` growing its array, `indent(500000000)`) is a fatal V8
 * OOM that takes the whole process down with it. A child dies alone.
 * The child is plain JavaScript (no build step, no TypeScript loader): it
 * loads the same libraries the main thread uses, from their resolved paths.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import type { TokenizerSpec } from '@weft/core';
import { ApiError } from './errors.js';

const WORKER_SOURCE = `
let Template = null;
let tokenizer = null;
const templates = new Map();
process.on('message', (job) => {
  if (job.op === 'init') {
    Template = require(job.jinja).Template;
    if (job.tokenizer) {
      const m = require(job.tokenizer.module);
      tokenizer = new (m.Tokenizer || m.default.Tokenizer)(job.tokenizer.json, job.tokenizer.options);
    }
    return;
  }
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
    process.send({ ok: true, result });
  } catch (e) {
    process.send({ ok: false, message: String((e && e.message) || e) });
  }
});
`;

export interface PromptWorkerOptions {
  /** What one job may take (default 10 s). */
  timeoutMs: number;
  /** The child's V8 heap (default 512 MiB). */
  maxHeapMb: number;
  /** Build this tokenizer in the child (for `encode`). */
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

/** One child process running one job at a time; a job over its limits kills it, the next job gets a fresh one. */
export class PromptWorker {
  private worker: ChildProcess | null = null;
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
    if (w) stop(w);
  }

  private run(message: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new ApiError(503, 'the server is shutting down'));
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      this.pump();
    });
  }

  private spawn(): ChildProcess {
    const w = spawn(process.execPath, [`--max-old-space-size=${this.opts.maxHeapMb}`, '-e', WORKER_SOURCE], {
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      serialization: 'advanced',
    });
    w.send({ op: 'init', jinja: createRequire(import.meta.url).resolve('@huggingface/jinja'), tokenizer: this.opts.tokenizer });
    // Idle children must not hold the process open.
    unref(w);
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
    w.on('error', (e: Error) => lost(`failed: ${e.message}`));
    // V8's fatal out-of-memory aborts the child (SIGABRT, or exit 134 through a shell).
    w.on('exit', (code, signal) =>
      lost(signal === 'SIGABRT' || code === 134 ? `needed more than ${this.opts.maxHeapMb} MiB of memory` : `stopped unexpectedly (${signal ?? `exit ${code}`})`),
    );
    return w;
  }

  private finish(): Job | null {
    const job = this.current;
    if (!job) return null;
    clearTimeout(job.timer);
    this.current = null;
    if (this.worker) unref(this.worker);
    return job;
  }

  private pump(): void {
    if (this.current || this.closed) return;
    const job = this.queue.shift();
    if (!job) return;
    const w = (this.worker ??= this.spawn());
    w.ref();
    w.channel?.ref();
    const timer = setTimeout(() => {
      // Past its time: the only way to stop synchronous work is to end the process doing it.
      const j = this.finish();
      this.worker = null;
      stop(w);
      j?.reject(new ApiError(400, `${this.opts.what} took longer than ${this.opts.timeoutMs} ms`, this.opts.param));
      this.pump();
    }, this.opts.timeoutMs);
    this.current = { ...job, timer };
    w.send(job.message);
  }
}

function unref(w: ChildProcess): void {
  w.unref();
  w.channel?.unref();
}

function stop(w: ChildProcess): void {
  w.removeAllListeners('message');
  if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
}
