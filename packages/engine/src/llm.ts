/**
 * The front end (vLLM's `LLM` and `AsyncLLM` in one): starts a rank per
 * worker thread with the model the registry picks, sizes the paged KV cache,
 * and runs the engine loop — schedule, broadcast the step, collect sampled
 * tokens, turn them into text — for any number of concurrent callers. New
 * requests join the running batch at the next step.
 */
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkWeightsFit, ConfigError, loadModelConfig, loadTokenizer, resolveParallelConfig, type BackendName, type ModelConfig, type ParallelConfig, type Tokenizer } from '@weft/core';
import { spawnRanks, type RankPoolLike, type SpawnOptions } from '@weft/comm';
import { EngineDeadError, RequestError } from './errors.js';
import { numKvBlocks, type KVSizingOptions } from './kv-sizing.js';
import type { RankArgs } from './model-runner.js';
import { RequestOutputState, type RequestDelta } from './output-processor.js';
import type { DriverMessage, RankMessage, StepMode, StepSeq, TraceEvent } from './protocol.js';
import { resolveArchitecture } from './registry.js';
import { Request, type FinishReason } from './request.js';
import type { TokenLogprob } from './sampler.js';
import { resolveSamplingParams, usesPenalties, type SamplingParams, type SamplingParamsInit } from './sampling-params.js';
import { Scheduler, type SchedulerOutput } from './scheduler.js';
import { readEosTokenIds } from './eos.js';

export type Prompt = string | number[];

export interface LLMOptions extends KVSizingOptions {
  tp?: number;
  pp?: number;
  dp?: number;
  enableExpertParallel?: boolean;
  backend?: BackendName;
  /** Collective and rendezvous timeout per blocking wait. */
  timeoutMs?: number;
  /** MoE token exchange under expert parallelism (default allgather). */
  moeDispatch?: 'allgather' | 'alltoall';
  /** MLA models (DeepSeek): KV cache of compressed latents (default) or full per-head K/V. */
  mlaKvCache?: 'latent' | 'full';
  /** Record a per-rank timeline (see `trace()`). */
  trace?: boolean;
  /** Weight-loading progress, summed over ranks. */
  onProgress?: (loaded: number, total: number) => void;
  /** Starts the ranks; default worker threads (spawnRanks). Processes over TCP: see @weft/comm startProcessRanks. */
  spawn?: (opts: SpawnOptions) => Promise<RankPoolLike>;
  /** Threads per rank for the tensorflow backend's intra-op pool (passed to the launcher). */
  intraOpThreads?: number;
  /** Launcher diagnostics (passed to the launcher). */
  verbose?: boolean;
  /** Longest prompt + output (default: the config's max_position_embeddings). */
  maxModelLen?: number;
  /** Tokens per KV block (default 16). */
  blockSize?: number;
  /** Token budget of one step (default 2048): longer prompts are prefilled in chunks. */
  maxNumBatchedTokens?: number;
  /** Sequences per step and replica (default 64). */
  maxNumSeqs?: number;
  /** Reuse the KV blocks of shared prompt prefixes (default true). */
  enablePrefixCaching?: boolean;
}

export interface CompletionOutput {
  /** Which of the `n` completions. */
  index: number;
  tokenIds: number[];
  text: string;
  finishReason: FinishReason;
  /** The stop string or stop token id that ended it. */
  stopReason?: string | number;
  logprobs?: TokenLogprob[];
  /** With `returnLogits`: the logits each generated token was sampled from. */
  logits?: Float32Array[];
}

export interface GenerateOutput extends Omit<CompletionOutput, 'index'> {
  /** Which prompt. */
  index: number;
  promptTokenIds: number[];
  /** With n > 1: every completion (the fields above are the first one's). */
  outputs?: CompletionOutput[];
}

export interface StreamEvent {
  /** Which of the `n` completions. */
  index: number;
  /** New text since this completion's previous event. */
  text: string;
  /** New token ids. */
  tokenIds: number[];
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | null;
}

export interface LLMStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  promptTokens: number;
  generationTokens: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  preemptions: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

type ResultMessage = Extract<RankMessage, { type: 'result' }>;
type ReadyMessage = Extract<RankMessage, { type: 'ready' }>;

/** One caller's prompt: its n sequences and where their output goes. */
interface Parent {
  index: number;
  promptTokenIds: number[];
  children: Child[];
  remaining: number;
  emit: (ev: StreamEvent) => void;
  done: () => void;
  fail: (e: Error) => void;
}

interface Child {
  index: number;
  parent: Parent;
  req: Request;
  out: RequestOutputState;
  replica: number;
}

/** Live tensor counts kept (the newest), for leak checks. */
const TENSOR_COUNT_WINDOW = 1024;
/** An engine idle this long without close() gets a warning (when its pool cannot be unref'd). */
const IDLE_WARN_MS = 30_000;

const rankEntryUrl = (): URL => new URL(`./rank-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export class LLM {
  readonly maxModelLen: number;
  readonly blockSize: number;
  readonly numKvBlocks: number;
  readonly unusedTensors: string[];
  readonly weightBytesPerRank: number[];
  /** Live tensors on DP replica 0's sampling rank after each of the latest steps (at most 1024, newest last). */
  readonly tensorCounts: number[] = [];
  private schedulers: Scheduler[];
  private readonly children = new Map<number, Child>();
  private readonly pendingSteps = new Map<number, { results: ResultMessage[]; n: number; resolve: (m: ResultMessage[]) => void; reject: (e: Error) => void }>();
  private readonly aborted = new Set<Child>();
  private traceEvents: TraceEvent[] = [];
  private stepId = 0;
  private nextSeqId = 1;
  private looping = false;
  private stepChain: Promise<unknown> = Promise.resolve();
  private dead: EngineDeadError | null = null;
  private closed = false;
  private counters = { promptTokens: 0, generationTokens: 0 };
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private warnedIdle = false;
  /** Blocks the schedulers may use (≤ numKvBlocks; see resetScheduler). */
  private poolLimit: number;

  private constructor(
    private readonly pool: RankPoolLike,
    readonly parallel: ParallelConfig & { worldSize: number },
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer | null,
    readonly eosTokenIds: number[],
    ready: ReadyMessage[],
    opts: Required<Pick<LLMOptions, 'maxNumBatchedTokens' | 'maxNumSeqs' | 'blockSize' | 'enablePrefixCaching'>> & { maxModelLen: number; numKvBlocks: number },
  ) {
    this.maxModelLen = opts.maxModelLen;
    this.blockSize = opts.blockSize;
    this.numKvBlocks = opts.numKvBlocks;
    this.poolLimit = opts.numKvBlocks;
    this.unusedTensors = [...new Set(ready.flatMap((r) => r.unused))];
    this.weightBytesPerRank = [...ready].sort((a, b) => a.rank - b.rank).map((r) => r.weightBytes);
    this.schedulers = Array.from(
      { length: parallel.dp },
      () =>
        new Scheduler({
          maxNumBatchedTokens: opts.maxNumBatchedTokens,
          maxNumSeqs: opts.maxNumSeqs,
          blockSize: opts.blockSize,
          numBlocks: opts.numKvBlocks,
          enablePrefixCaching: opts.enablePrefixCaching,
        }),
    );
  }

  /** Start the ranks of the model in `modelDir` (any registered architecture) and size its KV cache. */
  static async load(modelDir: string, opts: LLMOptions = {}): Promise<LLM> {
    if (!existsSync(join(modelDir, 'config.json'))) throw new ConfigError(`${modelDir}: no config.json (not a Hugging Face model directory)`);
    const config = loadModelConfig(modelDir);
    const architecture = resolveArchitecture(modelDir);
    const parallel = resolveParallelConfig({ tp: opts.tp, pp: opts.pp, dp: opts.dp, ep: opts.enableExpertParallel });
    // Worker threads all live on this host; ranks started by a custom launcher may not: check only what a rank needs.
    checkWeightsFit(modelDir, { tp: parallel.tp, pp: parallel.pp, dp: parallel.dp, backend: opts.backend, localRanks: opts.spawn ? 1 : undefined });
    const maxModelLen = opts.maxModelLen ?? config.maxPositionEmbeddings;
    if (!Number.isInteger(maxModelLen) || maxModelLen < 2 || maxModelLen > config.maxPositionEmbeddings) {
      throw new ConfigError(`maxModelLen ${maxModelLen} must be an integer in [2, ${config.maxPositionEmbeddings}] (the config's max_position_embeddings)`);
    }
    const blockSize = opts.blockSize ?? 16;
    const maxNumSeqs = opts.maxNumSeqs ?? 64;
    const maxNumBatchedTokens = opts.maxNumBatchedTokens ?? 2048;
    for (const [k, v] of Object.entries({ blockSize, maxNumSeqs, maxNumBatchedTokens })) {
      if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${k} must be a positive integer, got ${v}`);
    }
    const tokenizer = tryLoadTokenizer(modelDir);
    const eos = readEosTokenIds(modelDir, config, tokenizer);
    const args: RankArgs = { modelDir, architecture, blockSize, trace: opts.trace ?? false, moeDispatch: opts.moeDispatch, mlaKvCache: opts.mlaKvCache };
    // Launcher options the lead's SpawnOptions gains; forwarded as given.
    const launcherExtras = { intraOpThreads: opts.intraOpThreads, verbose: opts.verbose };
    const pool = await (opts.spawn ?? spawnRanks)({ parallel, entry: rankEntryUrl(), args, backend: opts.backend, timeoutMs: opts.timeoutMs, ...launcherExtras });
    let engine: LLM | null = null;
    const ready: ReadyMessage[] = [];
    const kvReady: number[] = [];
    const progress = new Map<number, { loaded: number; total: number }>();
    let onAllReady = () => {};
    let onAllKvReady = () => {};
    pool.onMessage((_rank, raw) => {
      const m = raw as RankMessage;
      if (m.type === 'progress') {
        progress.set(m.rank, { loaded: m.loaded, total: m.total });
        const sum = [...progress.values()].reduce((a, p) => ({ loaded: a.loaded + p.loaded, total: a.total + p.total }), { loaded: 0, total: 0 });
        // Ranks that have not reported yet are assumed to load as many tensors as those that have.
        opts.onProgress?.(sum.loaded, Math.round((sum.total * pool.worldSize) / progress.size));
      } else if (m.type === 'ready') {
        ready.push(m);
        if (ready.length === pool.worldSize) onAllReady();
      } else if (m.type === 'kv-ready') {
        kvReady.push(m.rank);
        if (kvReady.length === pool.worldSize) onAllKvReady();
      } else if (m.type === 'result') {
        engine?.onResult(m);
      } else if (m.type === 'trace') {
        engine?.traceEvents.push(...m.events);
      }
    });
    // A rank that fails while loading rejects results(); surface that instead of waiting forever.
    const failed = pool.results().then(
      () => Promise.reject(new Error('ranks exited before they were ready')),
      (e: unknown) => Promise.reject(e),
    );
    failed.catch(() => {});
    let numBlocks: number;
    try {
      await Promise.race([new Promise<void>((r) => (onAllReady = r)), failed]);
      numBlocks = numKvBlocks(opts, { bytesPerBlock: ready.map((r) => r.kvBytesPerBlock), blockSize, maxModelLen, maxNumSeqs });
      const allKv = new Promise<void>((r) => (onAllKvReady = r));
      await pool.broadcast({ type: 'init-kv', numBlocks, blockSize } satisfies DriverMessage);
      await Promise.race([allKv, failed]);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    engine = new LLM(pool, parallel, config, tokenizer, eos, ready, {
      maxModelLen,
      blockSize,
      maxNumSeqs,
      maxNumBatchedTokens,
      enablePrefixCaching: opts.enablePrefixCaching ?? true,
      numKvBlocks: numBlocks,
    });
    failed.catch((e: unknown) => engine!.fail(e as Error));
    engine.setBusy(false);
    return engine;
  }

  get worldSize(): number {
    return this.pool.worldSize;
  }

  /** Data-parallel replicas. */
  get dp(): number {
    return this.parallel.dp;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  health(): { ok: true } | { ok: false; error: string } {
    if (this.dead) return { ok: false, error: this.dead.message };
    if (this.closed) return { ok: false, error: 'engine closed' };
    return { ok: true };
  }

  stats(): LLMStats {
    const s = this.schedulers;
    return {
      running: s.reduce((a, x) => a + x.running.length, 0),
      waiting: s.reduce((a, x) => a + x.waiting.length, 0),
      kvBlocksUsed: s.reduce((a, x) => a + x.kv.usedBlocks, 0),
      kvBlocksTotal: s.reduce((a, x) => a + x.kv.numBlocks, 0),
      promptTokens: this.counters.promptTokens,
      generationTokens: this.counters.generationTokens,
      prefixCacheQueries: s.reduce((a, x) => a + x.kv.queries, 0),
      prefixCacheHits: s.reduce((a, x) => a + x.kv.hits, 0),
      preemptions: s.reduce((a, x) => a + x.preemptions, 0),
    };
  }

  encode(prompt: Prompt): number[] {
    if (typeof prompt !== 'string') return prompt;
    if (!this.tokenizer) throw new RequestError('this model directory has no tokenizer.json: pass token ids instead of text', 'prompt');
    return this.tokenizer.encode(prompt);
  }

  decode(ids: number[]): string {
    return this.tokenizer ? this.tokenizer.decode(ids) : ids.join(' ');
  }

  /** Token ids of a prompt, checked on the driver before any rank sees them. */
  private promptIds(prompt: Prompt, what = 'prompt'): number[] {
    if (typeof prompt !== 'string' && !Array.isArray(prompt)) throw new RequestError(`${what} must be a string or an array of token ids`, 'prompt');
    const ids = this.encode(prompt);
    if (ids.length === 0) throw new RequestError(`${what} is empty: it needs at least one token`, 'prompt');
    const vocab = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new RequestError(`${what}: token id ${t} at position ${i} is outside the vocabulary [0, ${vocab})`, 'prompt');
    }
    return ids;
  }

  private checkAlive(): void {
    if (this.dead) throw this.dead;
    if (this.closed) throw new EngineDeadError('engine closed');
  }

  /** Generate for every prompt; many callers may run at once. One output per prompt, in order. */
  async generate(prompts: Prompt[], params?: SamplingParamsInit | SamplingParamsInit[], opts: RequestOptions = {}): Promise<GenerateOutput[]> {
    this.checkAlive();
    if (!Array.isArray(prompts)) throw new RequestError('prompts must be an array', 'prompts');
    if (Array.isArray(params) && params.length !== prompts.length) {
      throw new RequestError(`${params.length} sampling parameter sets for ${prompts.length} prompts: give one, or one per prompt`, 'params');
    }
    // Validate every prompt before any is added: a bad one rejects the call and runs nothing.
    const prepared = prompts.map((p, i) => {
      const ids = this.promptIds(p, prompts.length > 1 ? `prompt ${i}` : 'prompt');
      const sp = resolveSamplingParams(Array.isArray(params) ? params[i] : params);
      this.checkFits(ids.length, sp);
      return { ids, sp };
    });
    const parents = prepared.map(({ ids, sp }, i) => {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      return { parent: this.addParent(i, ids, sp, () => {}, resolve, reject), done };
    });
    const detach = this.watchAbort(opts.signal, parents.map((p) => p.parent));
    this.kick();
    try {
      await Promise.all(parents.map((p) => p.done));
    } finally {
      detach();
    }
    return parents.map(({ parent }) => outputOf(parent));
  }

  /** Stream one prompt's completions as deltas; `index` says which of the `n`. */
  async *stream(prompt: Prompt, params?: SamplingParamsInit, opts: RequestOptions = {}): AsyncGenerator<StreamEvent> {
    this.checkAlive();
    // Deprecated: the pre-engine API took a list of prompts; a list of one still streams that prompt.
    if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) prompt = prompt[0] as Prompt;
    const ids = this.promptIds(prompt);
    const sp = resolveSamplingParams(params);
    this.checkFits(ids.length, sp);
    const queue: StreamEvent[] = [];
    let wake: (() => void) | null = null;
    let finished = false;
    let error: Error | null = null;
    const parent = this.addParent(
      0,
      ids,
      sp,
      (ev) => {
        queue.push(ev);
        wake?.();
      },
      () => {
        finished = true;
        wake?.();
      },
      (e) => {
        error = e;
        finished = true;
        wake?.();
      },
    );
    const detach = this.watchAbort(opts.signal, [parent]);
    this.kick();
    try {
      for (;;) {
        if (queue.length) {
          yield queue.shift()!;
          continue;
        }
        if (error) throw error;
        if (finished) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      detach();
      // The consumer stopped early (break / return): abort what is left.
      if (!finished) this.abortParent(parent);
    }
  }

  /** Logits for every position of `ids` (full-sequence forward, no cache): `[len][vocab]`. */
  async logits(ids: number[]): Promise<Float32Array[]> {
    return (await this.logitsMany([ids]))[0]!;
  }

  /** Full-sequence logits of several prompts at once, spread over the DP replicas. */
  async logitsMany(prompts: number[][]): Promise<Float32Array[][]> {
    this.checkAlive();
    if (!Array.isArray(prompts)) throw new RequestError('prompts must be an array', 'prompts');
    const checked = prompts.map((p, i) => {
      const ids = this.promptIds(p, prompts.length > 1 ? `prompt ${i}` : 'prompt');
      if (ids.length > this.maxModelLen) throw new RequestError(`prompt of ${ids.length} tokens is longer than maxModelLen ${this.maxModelLen}`, 'prompt');
      return ids;
    });
    if (checked.length === 0) return [];
    const seqs = checked.map((tokens) => ({ seqId: this.nextSeqId++, tokens }));
    const replicas = Array.from({ length: this.dp }, (_, d) => seqs.filter((_, i) => i % this.dp === d));
    const step: StepSeq[][] = replicas.map((rs) => rs.map((s) => ({ seqId: s.seqId, tokens: s.tokens, contextLen: 0, blockTable: [], sample: false, tokenIndex: 0 })));
    const results = await this.runStep('logits-all', step, replicas.map(() => []));
    const out: Float32Array[][] = [];
    replicas.forEach((rs, d) => {
      const { cols, data } = results[d]!.logits!;
      let row = 0;
      for (const s of rs) {
        out[seqs.indexOf(s)] = s.tokens.map((_, t) => data.slice((row + t) * cols, (row + t + 1) * cols));
        row += s.tokens.length;
      }
    });
    return out;
  }

  /**
   * @internal Tests and benchmarks: new schedulers with other limits, while idle. `numKvBlocks` may only
   * shrink the pool the ranks allocated (a smaller pool uses a subset of their blocks); the prefix cache starts empty.
   */
  async resetScheduler(limits: { maxNumBatchedTokens?: number; maxNumSeqs?: number; numKvBlocks?: number; enablePrefixCaching?: boolean } = {}): Promise<void> {
    if (this.schedulers.some((s) => s.numUnfinished > 0)) throw new Error('resetScheduler: the engine is busy');
    // The loop may still be sending the last step's frees.
    while (this.looping) await new Promise((r) => setTimeout(r, 1));
    const c = this.schedulers[0]!.config;
    const numBlocks = limits.numKvBlocks ?? this.numKvBlocks;
    if (!Number.isInteger(numBlocks) || numBlocks < 1 || numBlocks > this.numKvBlocks) throw new Error(`resetScheduler: numKvBlocks must be in [1, ${this.numKvBlocks}]`);
    const freed = this.schedulers.map((s) => s.schedule().freedSeqIds);
    this.schedulers = this.schedulers.map(
      (_, d) =>
        new Scheduler({
          maxNumBatchedTokens: limits.maxNumBatchedTokens ?? c.maxNumBatchedTokens,
          maxNumSeqs: limits.maxNumSeqs ?? c.maxNumSeqs,
          blockSize: c.blockSize,
          numBlocks,
          enablePrefixCaching: limits.enablePrefixCaching ?? c.enablePrefixCaching,
        }),
    );
    // Sequences the old schedulers freed since the last step: the ranks still need to hear of them.
    this.schedulers.forEach((s, d) => s.carryFreed(freed[d]!));
    this.poolLimit = numBlocks;
  }

  /** Trace events recorded so far (Chrome trace format); `trace: true` at load. */
  trace(): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms' } {
    return { traceEvents: [...this.traceEvents], displayTimeUnit: 'ms' };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const err = new EngineDeadError('engine closed');
    for (const c of [...this.children.values()]) c.parent.fail(err);
    this.children.clear();
    if (!this.dead) {
      try {
        await this.stepChain.catch(() => {});
        await this.pool.broadcast({ type: 'shutdown' } satisfies DriverMessage);
        await Promise.race([this.pool.results(), new Promise((r) => setTimeout(r, 2000))]);
      } catch {
        /* terminating anyway */
      }
    }
    await this.pool.terminate();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- requests ----

  /** Can this request ever run? (Checked before it is queued, naming the limit.) */
  private checkFits(promptLen: number, sp: SamplingParams): void {
    const total = promptLen + sp.maxTokens;
    if (total > this.maxModelLen) {
      throw new RequestError(
        `prompt (${promptLen} tokens) + maxTokens (${sp.maxTokens}) = ${total} is more than maxModelLen ${this.maxModelLen}`,
        promptLen >= this.maxModelLen ? 'prompt' : 'maxTokens',
      );
    }
    const blocks = Math.ceil(total / this.blockSize);
    if (blocks > this.poolLimit) {
      throw new RequestError(
        `prompt + maxTokens = ${total} tokens need ${blocks} KV blocks of ${this.blockSize}, more than the whole pool (numKvBlocks ${this.poolLimit})`,
        'maxTokens',
      );
    }
  }

  private addParent(index: number, ids: number[], sp: SamplingParams, emit: (ev: StreamEvent) => void, done: () => void, fail: (e: Error) => void): Parent {
    const parent: Parent = { index, promptTokenIds: ids, children: [], remaining: sp.n, emit, done, fail };
    // The least-loaded replica takes all n sequences (they share the prompt's cached blocks).
    const replica = this.leastLoadedReplica();
    for (let i = 0; i < sp.n; i++) {
      // n > 1: each completion draws its own stream (seed + i), reproducible when seeded.
      const params = i === 0 ? sp : { ...sp, seed: (sp.seed + i) >>> 0 };
      const req = new Request(this.nextSeqId++, ids, params);
      const child: Child = { index: i, parent, req, out: new RequestOutputState(req, this.tokenizer, this.eosTokenIds), replica };
      parent.children.push(child);
      this.children.set(req.seqId, child);
      this.schedulers[replica]!.add(req);
    }
    return parent;
  }

  private leastLoadedReplica(): number {
    let best = 0;
    for (let d = 1; d < this.schedulers.length; d++) if (this.schedulers[d]!.numUnfinished < this.schedulers[best]!.numUnfinished) best = d;
    return best;
  }

  private watchAbort(signal: AbortSignal | undefined, parents: Parent[]): () => void {
    if (!signal) return () => {};
    const onAbort = () => parents.forEach((p) => this.abortParent(p));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  private abortParent(parent: Parent): void {
    for (const c of parent.children) if (!c.req.isFinished) this.aborted.add(c);
    // Between steps, abort now; during one, the loop does it when the step returns.
    if (!this.looping) this.processAborts();
    this.kick();
  }

  private processAborts(): void {
    for (const c of this.aborted) this.finishChild(c, 'abort', null);
    this.aborted.clear();
  }

  /** End a sequence: free its blocks, tell its caller. */
  private finishChild(c: Child, reason: FinishReason, delta: RequestDelta | null): void {
    if (!c.req.isFinished) this.schedulers[c.replica]!.finish(c.req, reason);
    this.children.delete(c.req.seqId);
    const d = delta ?? c.out.end(reason);
    c.parent.emit(eventOf(c, d));
    if (--c.parent.remaining === 0) c.parent.done();
  }

  // ---- the engine loop ----

  private kick(): void {
    if (this.looping || this.dead || this.closed) return;
    this.looping = true;
    this.setBusy(true);
    void this.loop().finally(() => {
      this.looping = false;
      // Work added while the loop was winding down.
      if (!this.dead && !this.closed && this.schedulers.some((s) => s.numUnfinished > 0)) this.kick();
      else this.setBusy(false);
    });
  }

  /**
   * Rank threads keep the process alive. While idle, let it exit if the pool can be unref'd;
   * otherwise say, once, that an unclosed engine is what keeps it running.
   */
  private setBusy(busy: boolean): void {
    const pool = this.pool as RankPoolLike & { ref?: () => void; unref?: () => void };
    if (busy) {
      pool.ref?.();
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      return;
    }
    if (pool.unref) {
      pool.unref();
      return;
    }
    if (this.warnedIdle || this.closed) return;
    this.idleTimer = setTimeout(() => {
      if (this.closed || this.dead || this.looping) return;
      this.warnedIdle = true;
      process.emitWarning(
        `weft LLM idle for ${IDLE_WARN_MS / 1000} s and not closed: its ${this.worldSize} rank thread(s) keep this process alive; call llm.close() or use \`await using\``,
        'WeftUnclosedEngine',
      );
    }, IDLE_WARN_MS);
    this.idleTimer.unref();
  }

  private async loop(): Promise<void> {
    while (!this.dead && !this.closed) {
      this.processAborts();
      if (!this.schedulers.some((s) => s.hasWork())) return;
      const outs = this.schedulers.map((s) => s.schedule());
      if (outs.every((o) => o.seqs.length === 0 && o.freedSeqIds.length === 0)) {
        // Work remains but nothing fits: cannot happen for requests that passed checkFits; fail them rather than spin.
        const err = new EngineDeadError('scheduler could not schedule any waiting request (internal error)');
        for (const c of [...this.children.values()]) this.failChild(c, err);
        return;
      }
      let results: ResultMessage[];
      try {
        results = await this.runStep('sample', outs.map((o, d) => o.seqs.map((s) => toStepSeq(s, this.schedulers[d]!))), outs.map((o) => o.freedSeqIds));
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      outs.forEach((o, d) => this.applyResult(d, o, results[d]!));
    }
  }

  private applyResult(d: number, out: SchedulerOutput, res: ResultMessage): void {
    const sched = this.schedulers[d]!;
    for (const s of out.seqs) this.counters.promptTokens += Math.max(0, Math.min(s.start + s.numNewTokens, s.req.numPromptTokens) - s.start);
    sched.updateAfterStep(out);
    for (const t of res.sampled ?? []) {
      const c = this.children.get(t.seqId);
      // Aborted (or closed) while the step ran: its token is dropped.
      if (!c || c.req.isFinished || this.aborted.has(c)) continue;
      this.counters.generationTokens++;
      const { delta, finish } = c.out.accept(t.tokenId, t.logprob, t.logits);
      if (finish) this.finishChild(c, finish, delta);
      else c.parent.emit(eventOf(c, delta));
    }
  }

  /** Broadcast one step and wait for every replica's answer; steps never overlap. */
  private runStep(mode: StepMode, replicas: StepSeq[][], freed: number[][]): Promise<ResultMessage[]> {
    const run = this.stepChain.then(async () => {
      if (this.dead) throw this.dead;
      const stepId = ++this.stepId;
      const answer = new Promise<ResultMessage[]>((resolve, reject) => this.pendingSteps.set(stepId, { results: [], n: 0, resolve, reject }));
      await this.pool.broadcast({ type: 'step', stepId, mode, replicas, freed } satisfies DriverMessage);
      return answer;
    });
    this.stepChain = run.catch(() => {});
    return run;
  }

  private onResult(m: ResultMessage): void {
    const p = this.pendingSteps.get(m.stepId);
    if (!p) return;
    if (p.results[m.dpRank] === undefined) p.n++;
    p.results[m.dpRank] = m;
    if (m.dpRank === 0) {
      this.tensorCounts.push(m.numTensors);
      if (this.tensorCounts.length > TENSOR_COUNT_WINDOW) this.tensorCounts.splice(0, this.tensorCounts.length - TENSOR_COUNT_WINDOW);
    }
    // One answer per DP replica.
    if (p.n === this.dp) {
      this.pendingSteps.delete(m.stepId);
      p.resolve(p.results);
    }
  }

  private failChild(c: Child, e: Error): void {
    this.children.delete(c.req.seqId);
    if (!c.req.isFinished) this.schedulers[c.replica]!.finish(c.req, 'abort');
    c.parent.fail(e);
  }

  /** A rank died or threw: every in-flight request rejects, and so does every later call. */
  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e instanceof EngineDeadError ? e : new EngineDeadError(`engine is dead: ${e.message}`, { cause: e });
    for (const p of this.pendingSteps.values()) p.reject(this.dead);
    this.pendingSteps.clear();
    for (const c of [...this.children.values()]) this.failChild(c, this.dead);
  }
}

function toStepSeq(s: SchedulerOutput['seqs'][number], sched: Scheduler): StepSeq {
  const { req } = s;
  const out: StepSeq = {
    seqId: req.seqId,
    tokens: req.tokens.slice(s.start, s.start + s.numNewTokens),
    contextLen: s.start,
    blockTable: sched.kv.blockTable(req.seqId),
    sample: s.sample,
    tokenIndex: req.outputTokenIds.length,
  };
  if (s.isNew) {
    out.start = { sampling: req.params };
    if (usesPenalties(req.params)) out.start.history = { prompt: [...req.promptTokenIds], output: [...req.outputTokenIds] };
  }
  return out;
}

function eventOf(c: Child, d: RequestDelta): StreamEvent {
  const ev: StreamEvent = { index: c.index, text: d.text, tokenIds: d.tokenIds, finishReason: d.finishReason };
  if (d.logprobs) ev.logprobs = d.logprobs;
  return ev;
}

function completionOf(c: Child): CompletionOutput {
  const o: CompletionOutput = { index: c.index, tokenIds: [...c.req.outputTokenIds], text: c.out.text, finishReason: c.req.finishReason ?? 'abort' };
  if (c.req.stopReason !== undefined) o.stopReason = c.req.stopReason;
  if (c.req.params.logprobs !== null) o.logprobs = c.out.logprobs;
  if (c.req.params.returnLogits) o.logits = c.out.logits;
  return o;
}

function outputOf(p: Parent): GenerateOutput {
  const outs = p.children.map(completionOf);
  const { index: _i, ...first } = outs[0]!;
  const g: GenerateOutput = { index: p.index, promptTokenIds: p.promptTokenIds, ...first };
  if (outs.length > 1) g.outputs = outs;
  return g;
}

function tryLoadTokenizer(dir: string): Tokenizer | null {
  try {
    return loadTokenizer(dir);
  } catch {
    return null;
  }
}

/** For tools that need the rank entry's path (e.g. bundlers): the module every rank runs. */
export function rankEntryPath(): string {
  return fileURLToPath(rankEntryUrl());
}
