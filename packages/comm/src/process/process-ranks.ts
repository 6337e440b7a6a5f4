/**
 * Ranks as processes: one rank per process, joined over TCP. The process of
 * global rank 0 also holds the driver (as vLLM's driver worker): it gets a
 * pool with the same face as the worker-thread RankPool. Every other process
 * serves its rank until the driver closes the pool, then returns.
 */
import { ConfigError, WeftError, configureTensorflowEnvironment, initBackend, rankCoords, resolveParallelConfig, type ParallelConfig } from '@weft/core';
import { deserializeError, serializeError, type SerializedError } from '../codec.js';
import { RankFailedError, type RankContext, type RankEntry, type SpawnOptions } from '../launcher.js';
import type { LaunchEnv } from '../rendezvous/env.js';
import { rendezvous } from '../rendezvous/rendezvous.js';
import { Channel } from '../tcp/channels.js';
import { PeerLostError, type TcpTransport } from '../tcp/transport.js';
import { buildTcpParallelState } from './tcp-state.js';
import { decodeMessage, encodeMessage } from './wire-codec.js';

/** What the driver needs from a group of ranks, wherever they run (threads: RankPool; processes: ProcessRankPool). */
export interface RankPoolLike {
  readonly worldSize: number;
  broadcast(msg: unknown): Promise<void>;
  onMessage(cb: (rank: number, msg: unknown) => void): void;
  results(): Promise<unknown[]>;
  close(): void;
  terminate(): Promise<void>;
}

type Up = { k: 'user'; msg: unknown } | { k: 'result'; value: unknown } | { k: 'error'; error: SerializedError };
type Down = { k: 'msg'; msg: unknown } | { k: 'close' };

export interface ProcessRanksOptions extends SpawnOptions {
  launch: LaunchEnv;
  log?: (line: string) => void;
}

export type ProcessRole = { role: 'driver'; pool: ProcessRankPool } | { role: 'worker'; rank: number; done: Promise<void> };

/** Join the job described by `launch`; rank 0 gets the pool, the others a promise that settles when their rank ends. */
export async function startProcessRanks(opts: ProcessRanksOptions): Promise<ProcessRole> {
  const config = resolveParallelConfig(opts.parallel);
  const { launch } = opts;
  if (launch.worldSize !== config.worldSize) {
    throw new ConfigError(
      `the launcher started ${launch.worldSize} ranks (${launch.style}), but tp ${config.tp} × pp ${config.pp} × dp ${config.dp} needs ${config.worldSize}`,
    );
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  if (opts.backend === undefined || opts.backend === 'tensorflow') {
    configureTensorflowEnvironment({ intraOpThreads: opts.intraOpThreads, localRanks: launch.localWorldSize ?? 1, verbose: opts.verbose });
  }
  // Loading the backend before the rendezvous keeps it out of the rendezvous timeout of the others.
  const backend = await initBackend(opts.backend ? { prefer: opts.backend } : {});
  const fn = await loadEntry(opts.entry, opts.exportName ?? 'main');
  const t = await rendezvous({
    rank: launch.rank,
    worldSize: launch.worldSize,
    masterAddr: launch.masterAddr,
    masterPort: launch.masterPort,
    bindHost: launch.bindAddr,
    listenPorts: launch.listenPorts,
    token: launch.token,
    timeoutMs,
    fingerprint: `tp=${config.tp},pp=${config.pp},dp=${config.dp},ep=${String(config.ep)}`,
    log: opts.log,
  });
  const state = buildTcpParallelState(t, config, launch.localRank);
  if (launch.rank === 0) return { role: 'driver', pool: new ProcessRankPool(t, config, fn, { rank: 0, state, backend, args: opts.args }) };
  return { role: 'worker', rank: launch.rank, done: serve(t, fn, { rank: launch.rank, state, backend, args: opts.args }) };
}

async function loadEntry(entry: string | URL, exportName: string): Promise<RankEntry> {
  const href = entry instanceof URL ? entry.href : entry;
  const mod = (await import(href)) as Record<string, unknown>;
  const fn = mod[exportName];
  if (typeof fn !== 'function') throw new ConfigError(`${href} does not export a function '${exportName}'`);
  return fn as RankEntry;
}

type BaseCtx = Omit<RankContext, 'driver'>;

/** A non-zero rank: driver messages come over the socket from rank 0, answers go back the same way. */
async function serve(t: TcpTransport, fn: RankEntry, base: BaseCtx): Promise<void> {
  const up = (m: Up) => t.send(0, Channel.driverUp, encodeMessage(m));
  const ctx: RankContext = {
    ...base,
    driver: {
      async recv() {
        const d = decodeMessage((await t.recv(0, Channel.driverDown, `rank ${base.rank}: waiting for the driver`, Infinity)) as Uint8Array) as Down;
        return d.k === 'close' ? undefined : d.msg;
      },
      send(msg: unknown) {
        up({ k: 'user', msg }).catch(() => {});
      },
    },
  };
  try {
    const value = await fn(ctx);
    await up({ k: 'result', value });
  } catch (e) {
    await up({ k: 'error', error: serializeError(e) }).catch(() => {});
    await t.close();
    throw e;
  }
  await t.close();
}

/** The driver's side in rank 0's process: rank 0 runs here too, on this thread (all its waits are asynchronous). */
export class ProcessRankPool implements RankPoolLike {
  readonly worldSize: number;
  private readonly listeners: ((rank: number, msg: unknown) => void)[] = [];
  private readonly local: unknown[] = [];
  private localWaiter: ((m: unknown) => void) | null = null;
  private closed = false;
  private failure: Error | null = null;
  private readonly values: unknown[];
  private readonly returned: boolean[];
  private readonly resultsPromise: Promise<unknown[]>;
  private resolveResults!: (v: unknown[]) => void;
  private rejectResults!: (e: Error) => void;
  private readonly onTerminate: (() => Promise<void>)[] = [];

  constructor(
    private readonly t: TcpTransport,
    private readonly config: ParallelConfig & { worldSize: number },
    fn: RankEntry,
    base: BaseCtx,
  ) {
    this.worldSize = t.worldSize;
    this.values = new Array<unknown>(this.worldSize).fill(undefined);
    this.returned = new Array<boolean>(this.worldSize).fill(false);
    this.resultsPromise = new Promise((res, rej) => {
      this.resolveResults = res;
      this.rejectResults = rej;
    });
    this.resultsPromise.catch(() => {});
    t.onAbort((e) => this.fail(e instanceof PeerLostError ? this.rankError(e.peer, 'exit', `was lost: ${e.detail}`, e) : e));
    for (let r = 1; r < this.worldSize; r++) void this.listen(r);
    const ctx: RankContext = {
      ...base,
      driver: {
        recv: () => this.nextLocal(),
        send: (msg) => queueMicrotask(() => this.emit(0, structuredClone(msg))),
      },
    };
    // Started after the caller has had a chance to subscribe.
    setImmediate(() => {
      Promise.resolve()
        .then(() => fn(ctx))
        .then(
          (v) => this.returnedBy(0, v),
          (e: Error) => this.fail(this.rankError(0, 'entry', e.message, e)),
        );
    });
  }

  private rankError(rank: number, phase: 'entry' | 'exit', detail: string, cause?: Error): RankFailedError {
    return new RankFailedError(rank, rankCoords(rank, this.config), phase, detail, cause);
  }

  private async listen(r: number): Promise<void> {
    for (;;) {
      let m: Up;
      try {
        m = decodeMessage((await this.t.recv(r, Channel.driverUp, `driver: messages of rank ${r}`, Infinity)) as Uint8Array) as Up;
      } catch {
        return; // the transport's abort reports it
      }
      if (m.k === 'user') this.emit(r, m.msg);
      else if (m.k === 'result') {
        this.returnedBy(r, m.value);
        return;
      } else if (m.k === 'error') {
        const cause = deserializeError(m.error);
        this.fail(this.rankError(r, 'entry', cause.message, cause));
        return;
      }
    }
  }

  private emit(rank: number, msg: unknown): void {
    for (const cb of this.listeners) cb(rank, msg);
  }

  private returnedBy(rank: number, value: unknown): void {
    if (this.returned[rank]) return;
    this.returned[rank] = true;
    this.values[rank] = value;
    if (this.returned.every(Boolean) && !this.failure) this.resolveResults(this.values);
  }

  private nextLocal(): Promise<unknown> {
    if (this.local.length) return Promise.resolve(this.local.shift());
    if (this.closed || this.failure) return Promise.resolve(undefined);
    return new Promise((r) => (this.localWaiter = r));
  }

  private pushLocal(m: unknown): void {
    const w = this.localWaiter;
    this.localWaiter = null;
    if (w) w(m);
    else this.local.push(m);
  }

  private fail(e: Error): void {
    if (this.failure || this.returned.every(Boolean)) return;
    this.failure = e;
    this.t.abort(e);
    this.pushLocal(undefined);
    this.rejectResults(e);
  }

  /** To every rank: rank 0 through a local queue, the others over their sockets (vLLM's remote readers). */
  async broadcast(msg: unknown): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.closed) throw new WeftError('the rank pool is closed');
    const bytes = encodeMessage({ k: 'msg', msg } satisfies Down);
    // Rank 0 gets its own copy, as a worker thread would.
    this.pushLocal((decodeMessage(bytes) as { msg: unknown }).msg);
    await Promise.all(Array.from({ length: this.worldSize - 1 }, (_, i) => this.t.send(i + 1, Channel.driverDown, bytes)));
  }

  onMessage(cb: (rank: number, msg: unknown) => void): void {
    this.listeners.push(cb);
  }

  results(): Promise<unknown[]> {
    return this.resultsPromise;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.localWaiter) this.pushLocal(undefined);
    const bye = encodeMessage({ k: 'close' } satisfies Down);
    for (let r = 1; r < this.worldSize; r++) this.t.send(r, Channel.driverDown, bye).catch(() => {});
  }

  /** Run `fn` when the pool terminates (e.g. wait for the local processes a built-in launcher started). */
  atTerminate(fn: () => Promise<void>): void {
    this.onTerminate.push(fn);
  }

  /** Fail (from outside): e.g. a supervised process died. */
  abort(e: Error): void {
    this.fail(e);
  }

  async terminate(): Promise<void> {
    this.close();
    // Give the other ranks a moment to report before the connections go.
    await Promise.race([this.resultsPromise.catch(() => {}), new Promise((r) => setTimeout(r, 5000).unref())]);
    if (!this.failure && !this.returned.every(Boolean)) {
      this.failure = new WeftError(`rank pool terminated before every rank returned (${this.returned.filter(Boolean).length} of ${this.worldSize} did)`);
      this.rejectResults(this.failure);
    }
    await this.t.close();
    for (const f of this.onTerminate) await f();
  }
}
