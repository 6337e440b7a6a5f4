import { CollectiveTimeoutError, ConfigError } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { RankFailedError, liveRankWorkers, runRanks, spawnRanks, type SpawnOptions } from './index.js';
import type { FaultArgs } from './test-entries/faults.js';

const entry = new URL('./test-entries/faults.ts', import.meta.url);
const opts = (args: FaultArgs, tp = 4): SpawnOptions => ({ parallel: { tp }, entry, backend: 'cpu', timeoutMs: 1500, args });

/** Run a pool that must fail; return the error and check that no worker is left. */
async function failing(o: SpawnOptions): Promise<Error> {
  const pool = await spawnRanks(o);
  const err = await pool.results().then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(err).toBeInstanceOf(Error);
  // results() rejects only once every worker has exited
  expect(pool.liveWorkers()).toBe(0);
  expect(liveRankWorkers()).toBe(0);
  await pool.terminate();
  return err!;
}

describe('rank failures end the whole pool', () => {
  it('a rank that throws before a collective: named with its coordinates, the others terminated', async () => {
    const t0 = performance.now();
    const err = await failing({ ...opts({ mode: 'throw', bad: 2 }), parallel: { tp: 2, pp: 2 }, timeoutMs: 60_000 });
    expect(err).toBeInstanceOf(RankFailedError);
    expect(err.message).toBe('rank 2 (tp 0, pp 1, dp 0) failed during entry: deliberate failure before the collective');
    expect((err.cause as Error).stack).toMatch(/faults\.ts/);
    // the others were blocked in allReduce with a 60 s timeout: they were terminated, not waited for
    expect(performance.now() - t0).toBeLessThan(20_000);
  });

  it('a rank that never calls the collective: the others time out naming it', async () => {
    const t0 = performance.now();
    const err = await failing(opts({ mode: 'skip', bad: 1 }));
    expect(err).toBeInstanceOf(RankFailedError);
    expect(err.cause).toBeInstanceOf(CollectiveTimeoutError);
    expect(err.message).toMatch(
      /^rank [023] \(tp [023], pp 0, dp 0\) failed during entry: \[tp:0\] allReduce timed out after 1500 ms on rank [023] \(rank [023] in group\): waiting for rank\(s\) 1 \(global\) that never arrived$/,
    );
    expect(performance.now() - t0).toBeLessThan(15_000);
  });

  it('a worker that exits', async () => {
    const err = await failing(opts({ mode: 'exit', bad: 3 }));
    expect(err.message).toMatch(/^rank 3 \(tp 3, pp 0, dp 0\) exited unexpectedly \(exit code 3\)/);
  });

  it('ranks calling different collectives get a clear mismatch error, not garbage', async () => {
    const err = await failing(opts({ mode: 'mismatch', bad: 0 }, 2));
    expect(err.message).toMatch(/\[tp:0\] collective mismatch on rank [01] \(rank [01] in group\): this rank called (allGather\(float32\[3\]\)|allReduce\(float32\[3\], sum\)) but rank [01] \(global\) called (allGather\(float32\[3\]\)|allReduce\(float32\[3\], sum\))$/);
  });

  it('send and recv time out naming the peer', async () => {
    const send = await failing({ ...opts({ mode: 'send-timeout', bad: 1 }, 2), scratchBytes: 4096 });
    expect(send.message).toMatch(/\[tp:0\] send timed out after 1500 ms on rank 0 \(rank 0 in group\): rank 1 \(global\) never received/);
    const recv = await failing(opts({ mode: 'recv-timeout', bad: 1 }, 2));
    expect(recv.message).toMatch(/\[tp:0\] recv timed out after 1500 ms on rank 0 \(rank 0 in group\): waiting for rank\(s\) 1 \(global\) that never sent/);
  });

  it('a return value that cannot be cloned is reported', async () => {
    const err = await failing(opts({ mode: 'unclonable', bad: 1 }, 2));
    expect(err.message).toMatch(/^rank 1 .* the entry's return value cannot be sent to the driver/);
  });

  it('an entry module without the export fails at spawn, leaving no worker', async () => {
    const err = await spawnRanks({ ...opts({ mode: 'throw', bad: -1 }, 2), exportName: 'nope' }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(RankFailedError);
    expect((err as Error).message).toMatch(/failed during init: .*faults\.ts does not export a function 'nope'/);
    expect((err as RankFailedError).cause).toBeInstanceOf(ConfigError);
    expect(liveRankWorkers()).toBe(0);
  });

  it('runRanks rejects and terminates; a bad config is refused before any worker starts', async () => {
    await expect(runRanks(opts({ mode: 'throw', bad: 0 }, 2))).rejects.toThrow(/rank 0 .*deliberate failure/);
    expect(liveRankWorkers()).toBe(0);
    await expect(runRanks({ ...opts({ mode: 'throw', bad: 0 }), parallel: { tp: 2, worldSize: 3 } })).rejects.toThrow(/world size 3 does not match/);
    await expect(runRanks({ ...opts({ mode: 'throw', bad: 0 }), args: { f: () => 1 } })).rejects.toThrow(/args cannot be sent to the workers/);
    expect(liveRankWorkers()).toBe(0);
  });

  it('terminate() is idempotent and rejects pending results', async () => {
    const pool = await spawnRanks({ ...opts({ mode: 'skip', bad: 0 }, 2), timeoutMs: 60_000 });
    await Promise.all([pool.terminate(), pool.terminate()]);
    await pool.terminate();
    expect(pool.liveWorkers()).toBe(0);
    await expect(pool.results()).rejects.toThrow(/terminated before every rank returned/);
  });
});
