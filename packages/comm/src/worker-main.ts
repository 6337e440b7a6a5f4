/**
 * Bootstrap of one rank's worker thread (a separate build entry): select the
 * backend, attach to the shared memory of the rank's groups, import the
 * user's entry module, report ready, wait for the go, run, report.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError, WeftError, initBackend, webgpuOptionsFromEnv } from '@weft/core';
import { serializeError } from './codec.js';
import type { RankContext, WorkerBoot, WorkerToMain } from './launcher.js';
import { MessageQueue, MessageQueueClosedError } from './message-queue.js';
import { buildParallelState } from './parallel-state.js';

const port = parentPort;
const boot = workerData as WorkerBoot | undefined;
if (port && boot && boot.weftRank === true) void run(boot);

async function run(b: WorkerBoot): Promise<void> {
  const post = (m: WorkerToMain) => port!.postMessage(m);
  let phase: 'init' | 'entry' = 'init';
  try {
    // The rank's edge: its environment (a copy of the launcher's) is read here, once, and passed down.
    const backend = await initBackend({ prefer: b.backend, threadRanks: b.threadRanks, webgpu: webgpuOptionsFromEnv(process.env) });
    const state = buildParallelState(b.rank, b.config, b.groups, b.tuning);
    const mod = (await import(b.entry)) as Record<string, unknown>;
    const fn = mod[b.exportName];
    if (typeof fn !== 'function') {
      throw new ConfigError(`${b.entry} does not export a function '${b.exportName}' (it exports: ${Object.keys(mod).join(', ') || 'nothing'})`);
    }
    // Idle waits for the driver must not block this thread's event loop.
    const driverQueue = MessageQueue.attach(b.driverMq, b.rank, { blocking: false, timeoutMs: Infinity });
    const ctx: RankContext = {
      rank: b.rank,
      state,
      backend,
      args: b.args,
      driver: {
        async recv() {
          try {
            return await driverQueue.dequeue(Infinity);
          } catch (e) {
            if (e instanceof MessageQueueClosedError) return undefined;
            throw e;
          }
        },
        send(msg: unknown) {
          post({ type: 'user', msg });
        },
      },
    };
    const go = await new Promise<boolean>((resolve) => {
      port!.once('message', (m: { type?: string }) => resolve(m?.type === 'start'));
      post({ type: 'ready' });
    });
    // The pool closed before it started (another rank failed to initialise): end here, so this thread
    // exits by itself and its backend is torn down in order rather than terminated mid-flight.
    if (!go) return;
    phase = 'entry';
    const value = await (fn as (c: RankContext) => unknown)(ctx);
    try {
      post({ type: 'result', value });
    } catch (e) {
      throw new WeftError(`the entry's return value cannot be sent to the driver (${(e as Error).message}); return plain data, not tensors`);
    }
  } catch (e) {
    post({ type: 'error', phase, error: serializeError(e) });
  }
}
