/**
 * TensorFlow (tfjs-node) reads its settings from the C environment: the log
 * level when the library loads, the thread pools when each rank creates its
 * eager context. A worker thread's `process.env` is a copy that never reaches
 * C `getenv`, so the launcher writes them into the real environment of each
 * process before any rank starts (the main thread for worker-thread ranks,
 * every rank process for process ranks). A variable the user exported wins
 * over a default; an explicit option wins over both.
 */
import { availableParallelism } from 'node:os';
import { ConfigError } from './errors.js';

export interface TensorflowEnvOptions {
  /** TF intra-op threads per rank; default cores ÷ ranks on this host (at least 1). */
  intraOpThreads?: number;
  /** Ranks of this job on this host (share its cores). */
  localRanks: number;
  /** Keep TensorFlow's start-up log lines (hidden by default). */
  verbose?: boolean;
}

export interface TensorflowEnv {
  intraOpThreads: number;
  interOpThreads: number;
  onednn: boolean;
}

/** Checks an intra-op thread count given as an option; names the option in the error. */
export function checkIntraOpThreads(n: unknown, what = 'intraOpThreads'): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ConfigError(`${what} must be a whole number ≥ 1, got ${String(n)}`);
  return n;
}

export function configureTensorflowEnvironment(opts: TensorflowEnvOptions, env: NodeJS.ProcessEnv = process.env): TensorflowEnv {
  const cores = availableParallelism();
  if (opts.intraOpThreads !== undefined) env.TF_NUM_INTRAOP_THREADS = String(checkIntraOpThreads(opts.intraOpThreads));
  else env.TF_NUM_INTRAOP_THREADS ??= String(Math.max(1, Math.floor(cores / Math.max(1, opts.localRanks))));
  // One op at a time per rank: the engine issues ops in order, and inter-op threads only oversubscribe the cores.
  env.TF_NUM_INTEROP_THREADS ??= '1';
  // Eigen's kernels beat oneDNN's for decode- and prefill-shaped matmuls on this CPU and used ~2.5× less CPU
  // (docs/benchmarks/cpu.md); TF_ENABLE_ONEDNN_OPTS=1 turns oneDNN back on.
  env.TF_ENABLE_ONEDNN_OPTS ??= '0';
  if (opts.verbose) env.TF_CPP_MIN_LOG_LEVEL = '0';
  else env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  return {
    intraOpThreads: Number(env.TF_NUM_INTRAOP_THREADS),
    interOpThreads: Number(env.TF_NUM_INTEROP_THREADS),
    onednn: env.TF_ENABLE_ONEDNN_OPTS !== '0',
  };
}
