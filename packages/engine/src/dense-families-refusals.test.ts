/**
 * What LLM.load refuses before any rank starts, naming the numbers: layouts
 * whose heads neither divide nor replicate over tp, and a config.json whose
 * sizes the checkpoint does not have (issue 17: num_hidden_layers 1e9 used
 * to allocate first and fail with "Invalid typed array length").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@weft/core';
import { LLM } from './llm.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-refusals-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function withConfig(fixture: string, patch: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${fixture}-`));
  const config = JSON.parse(fs.readFileSync(path.join(fixtureDir(fixture), 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
  fs.symlinkSync(path.join(fixtureDir(fixture), 'model.safetensors'), path.join(dir, 'model.safetensors'));
  return dir;
}

async function refusal(dir: string, opts: { tp?: number; pp?: number }): Promise<string> {
  const t0 = performance.now();
  const err = await LLM.load(dir, { ...opts, backend: 'wasm' }).then(
    async (llm) => {
      await llm.close();
      return null;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  // No rank was started: starting even one takes longer than this.
  expect(performance.now() - t0).toBeLessThan(1000);
  return (err as Error).message;
}

describe('LLM.load refuses before any rank starts', () => {
  it('query heads that tp does not divide', async () => {
    expect(await refusal(fixtureDir('gemma2-tiny'), { tp: 3 })).toMatch(/num_attention_heads=8 is not divisible by tp=3 \(choose tp from 1, 2, 4, 8\)/);
  });
  it('KV heads that tp can neither split nor replicate', async () => {
    // 12 query heads over 2 KV heads: tp 3 splits the queries, but neither splits nor replicates the KV heads.
    expect(await refusal(fixtureDir('qwen2-swa-tied'), { tp: 3 })).toMatch(/num_key_value_heads=2 can be neither split over tp=3 .* nor replicated on it .*; tp that fit: 1, 2, 4, 6/);
  });
  it('more pipeline stages than layers', async () => {
    expect(await refusal(fixtureDir('phi3-tiny'), { pp: 4 })).toMatch(/pp=4 is more than num_hidden_layers=3/);
  });
  it('a config.json whose sizes the checkpoint does not have', async () => {
    expect(await refusal(withConfig('mistral-swa-tiny', { num_hidden_layers: 1e9 }), {})).toMatch(/"num_hidden_layers"=1000000000, but the checkpoint holds 3 layer/);
    expect(await refusal(withConfig('qwen2-tiny', { vocab_size: 2e7 }), {})).toMatch(/"vocab_size"=20000000 .*model\.embed_tokens\.weight/);
  });
});

describe('max_position_embeddings has no tensor to check against', () => {
  it('with maxModelLen the rotary tables stop there (2e7 positions: 66 s and 2.7 GB peak before, on qwen2-tiny)', async () => {
    const dir = withConfig('qwen2-tiny', { max_position_embeddings: 2e7 });
    const before = process.memoryUsage().rss;
    const llm = await LLM.load(dir, { backend: 'wasm', maxModelLen: 256 });
    try {
      // One rank's table for 2e7 positions alone would be 2e7 × 8 × 2 floats = 1.28 GB.
      expect(process.memoryUsage().rss - before).toBeLessThan(600 * 1024 ** 2);
      expect(llm.maxModelLen).toBe(256);
      expect((await llm.logits([1, 2, 3])).length).toBe(3);
    } finally {
      await llm.close();
    }
  });
  it('without maxModelLen the rotary table grows only to the positions used (2e7 positions cost nothing up front)', async () => {
    const dir = withConfig('qwen2-tiny', { max_position_embeddings: 2e7 });
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    const llm = await LLM.load(dir, { backend: 'wasm' });
    try {
      expect(llm.maxModelLen).toBe(2e7);
      // The whole table (2e7 × 8 × 2 floats, 1.28 GB, ~1 minute to compute) is never built.
      expect(process.memoryUsage().rss - before).toBeLessThan(600 * 1024 ** 2);
      const [out] = await llm.generate([[1, 2, 3]], { maxTokens: 4, ignoreEos: true });
      expect(out!.tokenIds.length).toBe(4);
      expect(performance.now() - t0).toBeLessThan(30_000);
    } finally {
      await llm.close();
    }
  });
});
