/**
 * One worker thread per rank. The main thread allocates every group's shared
 * memory, hands each worker its groups, waits until all have initialised,
 * then starts them together (so a slow backend load is not counted against
 * collective timeouts). The first failure of any rank terminates all of them.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  ConfigError,
  WeftError,
  configureTensorflowEnvironment,
  prepareWebgpuEnvironment,
  rankCoords,
  rankLayout,
  resolveParallelConfig,
  type BackendInfo,
  type BackendName,
  type GroupKind,
  type ParallelConfig,
  type ParallelOptions,
  type RankLayout,
} from '@weft/core';
import { deserializeError, type SerializedError } from './codec.js';
import { MessageQueue, type MessageQueueHandle } from './message-queue.js';
import { createSharedGroups, groupsOfRank, type GroupResources, type ParallelState } from './parallel-state.js';
import { abortShmGroup, type ShmTuning } from './shm-group.js';

export interface SpawnOptions {
  parallel: ParallelOptions;
  /** Module path or URL exporting the rank entry function (.ts works from source and with tsx). */
  entry: string | URL;
  /** Default 'main'. */
  exportName?: string;
  /** Structured-cloneable; given to every rank. */
  args?: unknown;
  /** initBackend({prefer}) in each worker; default: automatic choice. */
  backend?: BackendName;
  /** Every blocking wait; default 60 000 ms. */
  timeoutMs?: number;
  /** Shared-memory slot per rank per group; larger tensors go in rounds. Default 4 MiB. */
  scratchBytes?: number;
  /** Microseconds a rank spins before sleeping in a wait; default 50 when there are two cores per rank, else 0 (spinning starves oversubscribed ranks). */
  spinUs?: number;
  /** tensorflow backend: intra-op threads per rank; default cores ÷ ranks on this host. */
  intraOpThreads?: number;
  /** tensorflow backend: keep TensorFlow's start-up log lines (hidden by default). */
  verbose?: boolean;
}

export interface RankContext {
  rank: number;
  state: ParallelState;
  backend: BackendInfo;
  args: unknown;
  driver: {
    /** Next message the driver broadcast; waits without timeout; undefined once the pool is closed. */
    recv(): Promise<unknown>;
    /** A small message to the driver (postMessage). */
    send(msg: unknown): void;
  };
}

export type RankEntry = (ctx: RankContext) => Promise<unknown> | unknown;

/** @internal What worker-main receives. */
export interface WorkerBoot {
  weftRank: true;
  rank: number;
  config: ParallelConfig & { worldSize: number };
  groups: Record<GroupKind, GroupResources>;
  driverMq: MessageQueueHandle;
  entry: string;
  exportName: string;
  args: unknown;
  backend?: BackendName;
  /** Ranks of this pool: all threads of this process (the tensorflow addon must be thread-safe for more than one). */
  threadRanks: number;
  tuning: ShmTuning;
}

/** @internal */
export type WorkerToMain =
  | { type: 'ready' }
  | { type: 'result'; value: unknown }
  | { type: 'error'; phase: 'init' | 'entry'; error: SerializedError }
  | { type: 'user'; msg: unknown };

/** A rank failed: names it, its coordinates and what it said (the original error is the cause). */
export class RankFailedError extends WeftError {
  override name = 'RankFailedError';
  constructor(
    readonly rank: number,
    readonly coords: { tpRank: number; ppRank: number; dpRank: number },
    readonly phase: 'init' | 'entry' | 'exit',
    detail: string,
    cause?: Error,
  ) {
    super(
      `rank ${rank} (tp ${coords.tpRank}, pp ${coords.ppRank}, dp ${coords.dpRank}) ` +
        `${phase === 'exit' ? '' : `failed during ${phase}: `}${detail}`,
      cause ? { cause } : undefined,
    );
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;
/** How long ranks may take to end by themselves once the pool closes (TensorFlow's teardown takes ~1 s on 2 cores). */
const EXIT_GRACE_MS = 15_000;
/** After a failure the others are woken with an error and end by themselves within moments; one stuck in native code is terminated sooner. */
const FAILURE_GRACE_MS = 5_000;
const DEFAULT_SCRATCH_BYTES = 4 << 20;

let liveCount = 0;
/** Rank worker threads of every pool in this process that have not exited yet (for tests and leak checks). */
export function liveRankWorkers(): number {
  return liveCount;
}

export class RankPool {
  readonly worldSize: number;
  readonly layout: RankLayout;
  private readonly workers: Worker[] = [];
  private readonly alive: boolean[];
  private readonly exits: Promise<void>[] = [];
  private readonly values: unknown[];
  private readonly returned: boolean[];
  private nReturned = 0;
  private nReady = 0;
  private failure: Error | null = null;
  private settled = false;
  private shuttingDown: Promise<void> | null = null;
  private readonly listeners: ((rank: number, msg: unknown) => void)[] = [];
  private readonly resultsPromise: Promise<unknown[]>;
  private resolveResults!: (v: unknown[]) => void;
  private rejectResults!: (e: Error) => void;
  /** @internal */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private readonly driverMq: MessageQueue;
  private readonly shm: GroupResources[];
  private readonly config: ParallelConfig & { worldSize: number };
  private readonly timeoutMs: number;

  /** @internal use spawnRanks */
  constructor(opts: SpawnOptions) {
    this.config = resolveParallelConfig(opts.parallel);
    this.layout = rankLayout(this.config);
    this.worldSize = this.config.worldSize;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const ws = this.worldSize;
    this.alive = new Array<boolean>(ws).fill(false);
    this.values = new Array<unknown>(ws).fill(undefined);
    this.returned = new Array<boolean>(ws).fill(false);
    this.resultsPromise = new Promise((res, rej) => {
      this.resolveResults = res;
      this.rejectResults = rej;
    });
    this.ready = new Promise((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    // Nobody may be listening yet: a failure must not become an unhandled rejection.
    this.resultsPromise.catch(() => {});
    this.ready.catch(() => {});

    const groups = createSharedGroups(this.layout, { scratchBytes: opts.scratchBytes ?? DEFAULT_SCRATCH_BYTES });
    this.shm = Object.values(groups).flat();
    this.driverMq = MessageQueue.create({
      name: 'driver',
      nReaders: ws,
      readerLabels: Array.from({ length: ws }, (_, r) => `rank ${r}`),
      timeoutMs: this.timeoutMs,
    });
    const tuning: ShmTuning = {
      timeoutMs: this.timeoutMs,
      // Measured: with one core per rank spinning starves the peer it waits for; with two it cuts wake-up latency.
      spinUs: opts.spinUs ?? (2 * ws <= availableParallelism() ? 50 : 0),
    };
    const entry = entryHref(opts.entry);
    const { script, execArgv } = workerScript(entry);
    try {
      // Fail before any worker exists rather than half-way through starting them.
      structuredClone(opts.args);
    } catch (e) {
      throw new ConfigError(`spawnRanks: args cannot be sent to the workers (${(e as Error).message})`);
    }

    if (opts.backend === 'webgpu') prepareWebgpuEnvironment();
    // Every rank of this pool is a thread of this process: they share its cores and its C environment.
    if (opts.backend === undefined || opts.backend === 'tensorflow') {
      configureTensorflowEnvironment({ intraOpThreads: opts.intraOpThreads, localRanks: ws, verbose: opts.verbose });
    }
    for (let rank = 0; rank < ws; rank++) {
      const boot: WorkerBoot = {
        weftRank: true,
        rank,
        config: this.config,
        groups: groupsOfRank(groups, this.layout, rank),
        driverMq: this.driverMq.handle(),
        entry,
        exportName: opts.exportName ?? 'main',
        args: opts.args,
        backend: opts.backend,
        threadRanks: ws,
        tuning,
      };
      const w = new Worker(script, { workerData: boot, execArgv, eval: typeof script === 'string', name: `weft rank ${rank}` });
      this.workers.push(w);
      this.alive[rank] = true;
      liveCount++;
      this.exits.push(
        new Promise<void>((res) => {
          w.once('exit', (code) => {
            this.alive[rank] = false;
            liveCount--;
            // Let messages posted just before the exit (an error report) land first.
            setImmediate(() => {
              if (!this.returned[rank] && !this.shuttingDown) {
                this.fail(new RankFailedError(rank, this.coords(rank), 'exit', `exited unexpectedly (exit code ${code}) before returning`));
              }
              res();
            });
          });
        }),
      );
      w.on('message', (m: WorkerToMain) => this.onWorkerMessage(rank, m));
      w.on('error', (e) => this.fail(new RankFailedError(rank, this.coords(rank), this.nReady === ws ? 'entry' : 'init', e.message, e)));
      w.on('messageerror', (e) => this.fail(new RankFailedError(rank, this.coords(rank), 'entry', `unreadable message: ${e.message}`, e)));
    }
  }

  private coords(rank: number) {
    return rankCoords(rank, this.config);
  }

  private onWorkerMessage(rank: number, m: WorkerToMain): void {
    switch (m.type) {
      case 'ready':
        if (++this.nReady === this.worldSize) this.resolveReady();
        break;
      case 'result':
        if (this.returned[rank]) return;
        this.returned[rank] = true;
        this.values[rank] = m.value;
        if (++this.nReturned === this.worldSize && !this.failure) {
          this.settled = true;
          this.resolveResults(this.values);
        }
        break;
      case 'error': {
        const cause = deserializeError(m.error);
        this.fail(new RankFailedError(rank, this.coords(rank), m.phase, cause.message, cause));
        break;
      }
      case 'user':
        for (const cb of this.listeners) cb(rank, m.msg);
        break;
    }
  }

  /** First failure wins: wake and end every worker, then reject. */
  private fail(e: Error): void {
    if (this.failure || this.settled) return;
    this.failure = e;
    for (const g of this.shm) if (g.shm) abortShmGroup(g.shm);
    void this.shutdown().then(() => {
      this.rejectReady(e);
      this.rejectResults(e);
    });
  }

  /** @internal */
  start(): void {
    for (const w of this.workers) w.postMessage({ type: 'start' });
  }

  /** Each rank's return value, index = global rank. Rejects (after every worker ended) when any rank fails. */
  results(): Promise<unknown[]> {
    return this.resultsPromise;
  }

  /** Driver → all ranks through the MessageQueue; waits (up to timeoutMs) while the ring is full. */
  async broadcast(msg: unknown): Promise<void> {
    if (this.failure) throw this.failure;
    await this.driverMq.enqueue(msg, this.timeoutMs);
  }

  /** Messages ranks sent with ctx.driver.send. */
  onMessage(cb: (rank: number, msg: unknown) => void): void {
    this.listeners.push(cb);
  }

  /** No more broadcasts: once drained, every driver.recv() resolves undefined (ranks' loops end). */
  close(): void {
    this.driverMq.close();
  }

  /** Let the process exit while this pool's threads are its only work (an idle engine nobody closed); `ref()` undoes it. */
  unref(): void {
    for (const w of this.workers) w.unref();
  }

  ref(): void {
    for (const w of this.workers) w.ref();
  }

  /** Workers that have not exited yet. */
  liveWorkers(): number {
    return this.alive.filter(Boolean).length;
  }

  /** Ends every worker; idempotent. results() rejects if not every rank had returned. */
  async terminate(): Promise<void> {
    await this.shutdown();
    if (!this.settled && !this.failure) {
      this.failure = new WeftError(`rank pool terminated before every rank returned (${this.nReturned} of ${this.worldSize} did)`);
      this.rejectReady(this.failure);
      this.rejectResults(this.failure);
    }
  }

  /**
   * Closing the driver queue ends every rank's loop; a rank that returns ends its thread by itself,
   * and native backends (TensorFlow's contexts and thread pools, Dawn's devices) are torn down in
   * order there. `Worker.terminate()` stops a thread wherever it is, possibly inside TensorFlow, and
   * the process could then crash in exit(): only threads still running after a grace period get it.
   */
  private shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.driverMq.close();
      // Ranks still waiting for the go (their peers failed to initialise) end without running the entry.
      for (const w of this.workers) w.postMessage({ type: 'abort' });
      const graceMs = this.failure ? FAILURE_GRACE_MS : Math.min(this.timeoutMs, EXIT_GRACE_MS);
      let timer: NodeJS.Timeout | undefined;
      const ended = Promise.all(this.exits);
      await Promise.race([ended, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      await Promise.all(this.workers.map((w, rank) => (this.alive[rank] ? w.terminate() : undefined)));
      await ended;
    })();
    return this.shuttingDown;
  }
}

/** Start one worker per rank; resolves once every rank has its backend, groups and entry loaded. */
export async function spawnRanks(opts: SpawnOptions): Promise<RankPool> {
  const pool = new RankPool(opts);
  await pool.ready;
  pool.start();
  return pool;
}

/** spawnRanks, wait for every result, terminate (also on error). */
export async function runRanks(opts: SpawnOptions): Promise<unknown[]> {
  const pool = await spawnRanks(opts);
  try {
    return await pool.results();
  } finally {
    await pool.terminate();
  }
}

const isTs = (path: string) => /\.(c|m)?tsx?$/.test(path);

/**
 * worker-main beside this module: .ts when running from source (vitest, tsx),
 * .js from dist, where tsup puts every entry and chunk in one folder. When
 * TypeScript must load in the worker (source, or a .ts entry), a two-line
 * bootstrap registers tsx inside the worker first: on Node 20, `--import tsx`
 * in a worker's execArgv does not (tsx only registers on the main thread there).
 */
function workerScript(entry: string): { script: URL | string; execArgv: string[] | undefined } {
  const here = import.meta.url;
  const fromSource = isTs(new URL(here).pathname);
  const main = new URL(fromSource ? './worker-main.ts' : './worker-main.js', here);
  if (!fromSource && !isTs(new URL(entry).pathname)) return { script: main, execArgv: undefined };
  const api = tsxApiUrl();
  const script =
    `import(${JSON.stringify(api)})` +
    `.then((m) => (m.register ?? m.default.register)())` +
    `.then(() => import(${JSON.stringify(main.href)}))` +
    `.catch((e) => { throw e; });`;
  return { script, execArgv: fromSource ? ['--conditions=source'] : undefined };
}

/** tsx's ESM API as an absolute URL, so the worker finds it whatever its cwd. */
function tsxApiUrl(): string {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve('tsx/esm/api');
  } catch {
    throw new WeftError('running TypeScript in rank workers needs the tsx package (npm i -D tsx), or build and use .js entries');
  }
  const mjs = path.replace(/\.cjs$/, '.mjs');
  return pathToFileURL(existsSync(mjs) ? mjs : path).href;
}

function entryHref(entry: string | URL): string {
  if (entry instanceof URL) return entry.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(entry) && !/^[a-z]:[\\/]/i.test(entry)) return new URL(entry).href;
  return pathToFileURL(resolvePath(entry)).href;
}
