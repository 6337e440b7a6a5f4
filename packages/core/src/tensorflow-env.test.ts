import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { configureTensorflowEnvironment } from './tensorflow-env.js';

describe('configureTensorflowEnvironment', () => {
  it('splits the cores between the ranks of a host, one inter-op thread, Eigen kernels, quiet start-up', () => {
    const env: NodeJS.ProcessEnv = {};
    const got = configureTensorflowEnvironment({ localRanks: 2 }, env);
    expect(env.TF_NUM_INTRAOP_THREADS).toBe(String(Math.max(1, Math.floor(availableParallelism() / 2))));
    expect(got).toEqual({ intraOpThreads: Math.max(1, Math.floor(availableParallelism() / 2)), interOpThreads: 1, onednn: false });
    expect(env.TF_CPP_MIN_LOG_LEVEL).toBe('2');
  });
  it('never fewer than one thread, even with more ranks than cores', () => {
    const env: NodeJS.ProcessEnv = {};
    expect(configureTensorflowEnvironment({ localRanks: availableParallelism() * 4 }, env).intraOpThreads).toBe(1);
  });
  it('an explicit option beats the environment, which beats the default; verbose shows the log', () => {
    const env: NodeJS.ProcessEnv = { TF_NUM_INTRAOP_THREADS: '7', TF_ENABLE_ONEDNN_OPTS: '1', TF_CPP_MIN_LOG_LEVEL: '3' };
    expect(configureTensorflowEnvironment({ localRanks: 1 }, env)).toMatchObject({ intraOpThreads: 7, onednn: true });
    expect(configureTensorflowEnvironment({ localRanks: 1, intraOpThreads: 3, verbose: true }, env).intraOpThreads).toBe(3);
    expect(env.TF_CPP_MIN_LOG_LEVEL).toBe('0');
  });
  it('a bad thread count names the option', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => configureTensorflowEnvironment({ localRanks: 1, intraOpThreads: bad }, {})).toThrow(/intraOpThreads must be a whole number ≥ 1/);
  });
});
