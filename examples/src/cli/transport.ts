/**
 * `--transport thread|tcp` for the model commands. thread (default): every
 * rank a worker thread of this process. tcp: every rank a process, joined
 * over TCP. Under a launcher (`weft launch`, torchrun-style env, mpirun,
 * srun) this process is the rank the environment says, and the same command
 * line runs in every rank's process: rank 0 drives and prints, the others
 * serve their rank and exit quietly. With no launcher, `--transport tcp`
 * starts the other ranks as local processes itself (a built-in `weft launch`).
 * `--rank-ports 29600-29631` (or WEFT_RANK_PORTS) pins the ports ranks other
 * than 0 listen on, for firewalls (docs/multi-host.md). The environment is
 * read here, once, at start-up.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import {
  RankFailedError,
  Supervisor,
  describeExit,
  parsePortRange,
  readLaunchEnv,
  startProcessRanks,
  type LaunchEnv,
  type RankPoolLike,
  type SpawnOptions,
} from '@weft/comm';
import { WeftError, rankCoords, resolveParallelConfig } from '@weft/core';
import { UsageError } from './args.js';

export const TRANSPORT_OPTIONS = { transport: { type: 'string' }, 'rank-ports': { type: 'string' } } as const;

type Values = Record<string, unknown>;

/** The engine's `spawn` for `--transport tcp` (or WEFT_TRANSPORT=tcp, which `weft launch` sets); undefined for threads. */
export function transportSpawn(v: Values): ((opts: SpawnOptions) => Promise<RankPoolLike>) | undefined {
  const transport = v.transport ?? process.env.WEFT_TRANSPORT ?? 'thread';
  if (transport === 'thread') {
    if (v['rank-ports'] !== undefined) throw new UsageError('--rank-ports is for --transport tcp (ranks as processes); threads listen on no port');
    return undefined;
  }
  if (transport !== 'tcp') throw new UsageError(`--transport must be thread or tcp; got '${String(transport)}'`);
  const launch = readLaunchEnv(process.env);
  const listenPorts = typeof v['rank-ports'] === 'string' ? parsePortRange(v['rank-ports'], '--rank-ports') : launch?.listenPorts;
  return async (opts) => {
    if (launch) return joinJob(opts, { ...launch, listenPorts });
    return selfLaunch(opts, listenPorts);
  };
}

async function joinJob(opts: SpawnOptions, launch: LaunchEnv, extra?: { abortOn: Promise<Error> }): Promise<RankPoolLike> {
  watchLauncher();
  let role;
  try {
    const start = startProcessRanks({ ...opts, launch });
    role = await (extra ? Promise.race([start, extra.abortOn.then((e) => Promise.reject(e))]) : start);
  } catch (e) {
    if (launch.rank === 0) throw e;
    return exitWorker(launch.rank, e);
  }
  if (role.role === 'driver') return role.pool;
  try {
    await role.done;
  } catch (e) {
    return exitWorker(launch.rank, e);
  }
  process.exit(0);
}

/** A worker rank's process ends here: it never returns to the command, which only rank 0 runs to the end. */
function exitWorker(rank: number, e: unknown): never {
  const err = e as Error;
  process.stderr.write(`weft rank ${rank}: ${err instanceof WeftError ? err.message : `${err.name}: ${err.message}`}\n`);
  process.exit(1);
}

/** Started by `weft launch` (with an IPC channel): end if the launcher is gone, so no rank outlives it. */
function watchLauncher(): void {
  if (!process.send) return;
  process.on('disconnect', () => {
    process.stderr.write('weft: the launcher went away; stopping this rank\n');
    process.exit(1);
  });
  process.channel?.unref();
}

/** `--transport tcp` with no launcher: this process is rank 0; ranks 1… are local processes of the same command line. */
async function selfLaunch(opts: SpawnOptions, listenPorts: LaunchEnv['listenPorts']): Promise<RankPoolLike> {
  const config = resolveParallelConfig(opts.parallel);
  const ws = config.worldSize;
  const port = await freePort();
  const token = randomBytes(24).toString('hex');
  // LOCAL_WORLD_SIZE: every rank is on this host; TensorFlow splits its cores between them (as with threads).
  const common = { WORLD_SIZE: String(ws), LOCAL_WORLD_SIZE: String(ws), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), WEFT_JOB_TOKEN: token, WEFT_TRANSPORT: 'tcp' };
  const sup = new Supervisor({
    command: process.execPath,
    args: [...process.execArgv, ...process.argv.slice(1)],
    ranks: Array.from({ length: ws - 1 }, (_, i) => ({ rank: i + 1, env: { ...common, RANK: String(i + 1), LOCAL_RANK: String(i + 1) } })),
    log: (l) => process.stderr.write(`weft: ${l}\n`),
  });
  const died = sup.firstFailure.then((x) => new RankFailedError(x.rank, rankCoords(x.rank, config), 'exit', describeExit(x).replace(/^rank \d+ /, '')) as Error);
  let pool: RankPoolLike;
  try {
    pool = await joinJob(opts, { style: 'torchrun', rank: 0, worldSize: ws, localRank: 0, localWorldSize: ws, masterAddr: '127.0.0.1', masterPort: port, token, listenPorts }, { abortOn: died });
  } catch (e) {
    await sup.stop();
    throw e;
  }
  const p = pool as RankPoolLike & { abort(e: Error): void; atTerminate(f: () => Promise<void>): void };
  void died.then((e) => p.abort(e));
  p.atTerminate(async () => {
    await sup.stopOthers(5000);
  });
  return pool;
}

/** A port free on loopback now (for a master the others are then told about). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}
