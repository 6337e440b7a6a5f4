/**
 * Starts local rank processes and watches them (torchrun's agent, without
 * restarts): the first one to die or fail is reported by rank, the others get
 * a grace period to end by themselves (they do at once: a lost peer aborts
 * their transport), then SIGTERM, then SIGKILL. Nothing is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface RankProcessSpec {
  rank: number;
  env: Record<string, string>;
}

export interface SuperviseOptions {
  command: string;
  args: string[];
  ranks: RankProcessSpec[];
  /** After the first failure, how long the others may take to end by themselves; default 10 000 ms. */
  graceMs?: number;
  log?: (line: string) => void;
  /** stdio of the children; default inherit (plus an IPC channel so they notice when we die). */
  stdio?: 'inherit' | 'pipe';
}

export interface RankExit {
  rank: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function describeExit(e: RankExit): string {
  return e.signal ? `rank ${e.rank} (pid ${e.pid}) was killed by ${e.signal}` : `rank ${e.rank} (pid ${e.pid}) exited with code ${e.code}`;
}

export class Supervisor {
  readonly children = new Map<number, ChildProcess>();
  private readonly exits: Promise<RankExit>[] = [];
  /** The first rank to end abnormally. */
  readonly firstFailure: Promise<RankExit>;
  private resolveFailure!: (e: RankExit) => void;
  private failed: RankExit | null = null;
  private stopping = false;
  private readonly graceMs: number;
  private readonly log: (line: string) => void;

  constructor(opts: SuperviseOptions) {
    this.graceMs = opts.graceMs ?? 10_000;
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
    this.firstFailure = new Promise((r) => (this.resolveFailure = r));
    for (const spec of opts.ranks) {
      const child = spawn(opts.command, opts.args, {
        env: { ...process.env, ...spec.env },
        stdio: opts.stdio === 'pipe' ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['inherit', 'inherit', 'inherit', 'ipc'],
      });
      this.children.set(spec.rank, child);
      this.exits.push(
        new Promise<RankExit>((res) => {
          child.once('error', (e) => {
            this.log(`rank ${spec.rank}: cannot start ${opts.command}: ${e.message}`);
            res({ rank: spec.rank, pid: child.pid ?? -1, code: 127, signal: null });
          });
          child.once('exit', (code, signal) => {
            const e = { rank: spec.rank, pid: child.pid ?? -1, code, signal };
            if ((code !== 0 || signal) && !this.failed && !this.stopping) {
              this.failed = e;
              this.resolveFailure(e);
              void this.stopOthers();
            }
            res(e);
          });
        }),
      );
    }
  }

  /** Every exit, once all children have ended. */
  wait(): Promise<RankExit[]> {
    return Promise.all(this.exits);
  }

  get failure(): RankExit | null {
    return this.failed;
  }

  private alive(): ChildProcess[] {
    return [...this.children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
  }

  /** Grace period, then SIGTERM, then SIGKILL. */
  async stopOthers(graceMs = this.graceMs): Promise<void> {
    const all = this.wait();
    const ended = (ms: number) => Promise.race([all.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    if (await ended(graceMs)) return;
    for (const c of this.alive()) c.kill('SIGTERM');
    if (await ended(3000)) return;
    for (const c of this.alive()) c.kill('SIGKILL');
    await all;
  }

  /** Stop everything now (e.g. on Ctrl-C), not counted as a failure of a rank. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.stopOthers(0);
  }
}
