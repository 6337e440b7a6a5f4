/**
 * The ranks as the driver sees them (vLLM's executor): start one per rank,
 * wait for their weights, size and allocate the paged KV cache, then
 * broadcast steps and gather each DP replica's answer. A rank failure fails
 * every pending step and is reported once.
 */
import type { BackendName, ParallelConfig } from '@weft/core';
import { spawnRanks, type RankPoolLike, type SpawnOptions } from '@weft/comm';
import { freeableWindow } from '@weft/layers';
import { EngineDeadError } from './errors.js';
import type { RankArgs } from './rank-runner.js';
import type { DriverMessage, PromptLogprobsRequest, RankMessage, StepMode, StepSeq, TraceEvent } from './protocol.js';

export type ResultMessage = Extract<RankMessage, { type: 'result' }>;
export type ReadyMessage = Extract<RankMessage, { type: 'ready' }>;

export interface ExecutorOptions {
  backend?: BackendName;
  timeoutMs?: number;
  onProgress?: (loaded: number, total: number) => void;
  spawn?: (opts: SpawnOptions) => Promise<RankPoolLike>;
  intraOpThreads?: number;
  verbose?: boolean;
}

/** Live tensor counts kept (the newest), for leak checks. */
const TENSOR_COUNT_WINDOW = 1024;
/** An engine idle this long without close() gets a warning (when its pool cannot be unref'd). */
const IDLE_WARN_MS = 30_000;

const rankEntryUrl = (): URL => new URL(`./rank-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** The window blocks may be freed behind, from the ranks' ready messages (see `RankExecutor.slidingWindow`). */
export function readySlidingWindow(ready: ReadyMessage[]): number | null {
  if (ready.some((r) => r.slidingWindows === undefined)) return null;
  return freeableWindow(ready.flatMap((r) => r.slidingWindows!));
}

export class RankExecutor {
  /** Live tensors on DP replica 0's sampling rank after each of the latest steps (at most 1024, newest last). */
  readonly tensorCounts: number[] = [];
  readonly traceEvents: TraceEvent[] = [];
  private readonly pending = new Map<number, { results: ResultMessage[]; n: number; resolve: (m: ResultMessage[]) => void; reject: (e: Error) => void }>();
  private stepChain: Promise<unknown> = Promise.resolve();
  private stepId = 0;
  private inFlight = 0;
  /** Most steps ever in flight at once (pipeline virtual engines at work). */
  maxInFlight = 0;
  private dead: EngineDeadError | null = null;
  private closed = false;
  private readonly failureListeners: ((e: EngineDeadError) => void)[] = [];
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private coreBusy = false;
  private holds = 0;
  private warnedIdle = false;

  private constructor(
    private readonly pool: RankPoolLike,
    readonly dp: number,
    readonly ready: ReadyMessage[],
    readonly numKvBlocks: number,
  ) {}

  /** Start the ranks; `sizeKv` turns their ready messages into the number of blocks each allocates. */
  static async start(
    parallel: ParallelConfig & { worldSize: number },
    args: RankArgs,
    opts: ExecutorOptions,
    sizeKv: (ready: ReadyMessage[]) => number,
  ): Promise<RankExecutor> {
    // Launcher options are forwarded as given.
    const launcher = { intraOpThreads: opts.intraOpThreads, verbose: opts.verbose };
    const pool = await (opts.spawn ?? spawnRanks)({ parallel, entry: rankEntryUrl(), args, backend: opts.backend, timeoutMs: opts.timeoutMs, ...launcher });
    let executor: RankExecutor | null = null;
    const ready: ReadyMessage[] = [];
    let kvReady = 0;
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
        if (++kvReady === pool.worldSize) onAllKvReady();
      } else if (m.type === 'result') {
        executor?.onResult(m);
      } else if (m.type === 'trace') {
        executor?.traceEvents.push(...m.events);
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
      numBlocks = sizeKv(ready);
      const allKv = new Promise<void>((r) => (onAllKvReady = r));
      await pool.broadcast({ type: 'init-kv', numBlocks, blockSize: args.blockSize } satisfies DriverMessage);
      await Promise.race([allKv, failed]);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    executor = new RankExecutor(pool, parallel.dp, [...ready].sort((a, b) => a.rank - b.rank), numBlocks);
    failed.catch((e: unknown) => executor!.fail(e as Error));
    executor.setBusy(false);
    return executor;
  }

  get worldSize(): number {
    return this.pool.worldSize;
  }

  /**
   * The window the KV-cache manager may free blocks behind: every attention
   * layer of every rank windowed (`freeableWindow`); null when one is global
   * or a rank did not say (the WebGPU step).
   */
  get slidingWindow(): number | null {
    return readySlidingWindow(this.ready);
  }

  /** Null while the ranks are alive. */
  get failure(): EngineDeadError | null {
    return this.dead;
  }

  onFailure(cb: (e: EngineDeadError) => void): void {
    this.failureListeners.push(cb);
  }

  /**
   * Broadcast one step and wait for every replica's answer. Steps are sent in
   * order and may overlap: ranks run them in that order, so with pipeline
   * parallelism the stages work on different steps at once.
   */
  step(mode: StepMode, replicas: StepSeq[][], freed: number[][], promptLogprobs?: PromptLogprobsRequest): Promise<ResultMessage[]> {
    if (this.dead) return Promise.reject(this.dead);
    const stepId = ++this.stepId;
    const answer = new Promise<ResultMessage[]>((resolve, reject) => this.pending.set(stepId, { results: [], n: 0, resolve, reject }));
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = () => this.inFlight--;
    answer.then(done, done);
    const sent = this.stepChain.then(() => this.pool.broadcast({ type: 'step', stepId, mode, replicas, freed, ...(promptLogprobs ? { promptLogprobs } : {}) } satisfies DriverMessage));
    this.stepChain = sent.catch(() => {});
    return sent.then(() => answer);
  }

  private onResult(m: ResultMessage): void {
    const p = this.pending.get(m.stepId);
    if (!p) return;
    if (p.results[m.dpRank] === undefined) p.n++;
    p.results[m.dpRank] = m;
    if (m.dpRank === 0) {
      this.tensorCounts.push(m.numTensors);
      if (this.tensorCounts.length > TENSOR_COUNT_WINDOW) this.tensorCounts.splice(0, this.tensorCounts.length - TENSOR_COUNT_WINDOW);
    }
    // One answer per DP replica.
    if (p.n === this.dp) {
      this.pending.delete(m.stepId);
      p.resolve(p.results);
    }
  }

  /** A rank died or threw: every pending step fails, and so does every later one. */
  fail(e: Error): void {
    if (this.dead) return;
    this.dead = e instanceof EngineDeadError ? e : new EngineDeadError(`engine is dead: ${e.message}`, { cause: e });
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
    for (const cb of this.failureListeners) cb(this.dead);
  }

  /**
   * Rank threads keep the process alive. While idle, let it exit if the pool can be unref'd;
   * otherwise say, once, that an unclosed engine is what keeps it running.
   */
  setBusy(busy: boolean): void {
    this.coreBusy = busy;
    this.applyBusy();
  }

  /** Keeps the process alive while `fn` waits on the ranks outside the engine loop (full-sequence logits). */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.holds++;
    this.applyBusy();
    try {
      return await fn();
    } finally {
      this.holds--;
      this.applyBusy();
    }
  }

  private applyBusy(): void {
    const busy = this.coreBusy || this.holds > 0;
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
    if (this.warnedIdle || this.closed || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.closed || this.dead) return;
      this.warnedIdle = true;
      process.emitWarning(
        `weft LLM idle for ${IDLE_WARN_MS / 1000} s and not closed: its ${this.worldSize} rank thread(s) keep this process alive; call llm.close() or use \`await using\``,
        'WeftUnclosedEngine',
      );
    }, IDLE_WARN_MS);
    this.idleTimer.unref();
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
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
}

/** For tools that need the rank entry's path (e.g. bundlers): the module every rank runs. */
export function rankEntryPath(): URL {
  return rankEntryUrl();
}
