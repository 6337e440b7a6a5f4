/**
 * LLM.load's options as a library user writes them, and the engine after
 * close(), on real worker-thread ranks (llama-tiny): a misspelt or vLLM-spelt
 * option (`tensorParallelSize`, `max_model_len`) once loaded at the defaults
 * without a word, and an unknown backend failed on a rank as
 * `RankFailedError`; `tp: '2'` was told "--tp must be a positive integer, got 2"; now each is a
 * ConfigError in the library's words before any rank starts. A
 * request after close() was told "ranks exited before they were ready".
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { EngineDeadError } from './errors.js';
import { LLM, type LLMOptions } from './llm.js';

const dir = join(fileURLToPath(new URL('../../../', import.meta.url)), 'fixtures/llama-tiny');

describe('LLM.load options', () => {
  it.each([
    [{ tensorParallelSize: 2 }, /unknown option 'tensorParallelSize' \(did you mean 'tp'\?\)/],
    [{ tensor_parallel_size: 2 }, /unknown option 'tensor_parallel_size' \(did you mean 'tp'\?\)/],
    [{ max_model_len: 64 }, /unknown option 'max_model_len' \(did you mean 'maxModelLen'\?\)/],
    [{ maxTokens: 8 }, /unknown option 'maxTokens'; the options are tp, pp, dp, /],
    [{ backend: 'gpu' }, /backend must be one of tensorflow, wasm, cpu, webgpu; got "gpu"/],
    [{ tp: '2' }, /^LLM\.load: tp must be a positive integer, got "2"$/],
    [{ pp: 0 }, /^LLM\.load: pp must be a positive integer, got 0$/],
  ])('%j: a ConfigError naming it, before any rank starts', async (opts, message) => {
    const t = Date.now();
    const err = await LLM.load(dir, opts as LLMOptions).then(
      (llm) => llm.close().then(() => null),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    // No rank was started: nothing to wait for.
    expect(Date.now() - t).toBeLessThan(1_000);
  });

  it('every option the type declares passes the check (undefined values included)', async () => {
    const llm = await LLM.load(dir, { tp: 2, pp: undefined, backend: 'cpu', maxModelLen: 64, numKvBlocks: 32, enablePrefixCaching: true, verbose: false });
    try {
      const [out] = await llm.generate([[5, 6, 7]], { maxTokens: 3 });
      expect(out!.tokenIds).toHaveLength(3);
    } finally {
      await llm.close();
    }
  });
});

describe('the engine after close()', () => {
  it('a request is refused saying the engine was closed; health says closed', async () => {
    const llm = await LLM.load(dir, { tp: 2, backend: 'cpu' });
    await llm.close();
    const err = await llm.generate([[5, 6, 7]], { maxTokens: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineDeadError);
    expect((err as Error).message).toMatch(/engine closed \(LLM\.close\(\) was called\)/);
    expect((err as Error).message).not.toMatch(/before they were ready/);
    expect(llm.health()).toEqual({ ok: false, error: 'engine closed' });
    await llm.close();
  });
});
