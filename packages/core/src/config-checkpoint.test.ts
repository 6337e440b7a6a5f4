import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckedModelConfig } from './config-checkpoint.js';
import { ConfigError } from './errors.js';

const FIXTURES = fileURLToPath(new URL('../../../fixtures', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-config-ckpt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture (weights linked, not copied) whose config.json has `patch` applied. */
function hostile(fixture: string, patch: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${fixture}-`));
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURES, fixture, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
  fs.symlinkSync(path.join(FIXTURES, fixture, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  return dir;
}

function refused(dir: string): string {
  const t0 = performance.now();
  const before = process.memoryUsage().rss;
  try {
    loadCheckedModelConfig(dir);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    // Refused from the headers alone: no time and no memory spent on the sizes first.
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 ** 2);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config.json sizes checked against the checkpoint before anything is built', () => {
  it('every fixture passes', () => {
    for (const f of ['llama-tiny', 'llama-bf16', 'qwen2-tiny', 'qwen3-tiny', 'phi3-tiny', 'gemma2-tiny', 'mistral-swa-tiny', 'deepseek-v3-tiny', 'deepseek-v2-lite-tiny']) {
      expect(loadCheckedModelConfig(path.join(FIXTURES, f)).numHiddenLayers).toBeGreaterThan(0);
    }
  });

  it('num_hidden_layers larger than the checkpoint (1e6, 1e9) names the field and the layers held', () => {
    expect(refused(hostile('llama-tiny', { num_hidden_layers: 1e6 }))).toMatch(/"num_hidden_layers"=1000000, but the checkpoint holds 4 layer\(s\) \(model\.layers\.0\.\.3\)/);
    expect(refused(hostile('phi3-tiny', { num_hidden_layers: 1e9 }))).toMatch(/"num_hidden_layers"=1000000000, but the checkpoint holds 3 layer/);
    // With layer_types written, the list's length disagrees first, as clearly.
    expect(refused(hostile('qwen2-tiny', { num_hidden_layers: 1e9 }))).toMatch(/"layer_types" must list .* for each of the 1000000000 layers, got 3 entries/);
    // A layer list that skips the last layer the config names.
    expect(refused(hostile('llama-tiny', { num_hidden_layers: 5 }))).toMatch(/"num_hidden_layers"=5/);
  });

  it('vocab, hidden, heads, KV heads and intermediate sizes that the tensors do not have', () => {
    expect(refused(hostile('llama-tiny', { vocab_size: 2e7 }))).toMatch(/"vocab_size"=20000000 does not match the checkpoint: model\.embed_tokens\.weight has shape \[512,128\]/);
    expect(refused(hostile('qwen3-tiny', { hidden_size: 4096 }))).toMatch(/"hidden_size"=4096 .*model\.embed_tokens\.weight/);
    expect(refused(hostile('qwen3-tiny', { num_attention_heads: 16, num_key_value_heads: 4 }))).toMatch(/"num_attention_heads"=16 .*o_proj\.weight has shape \[128,256\] \(expected 16 heads × head_dim 32 = 512 columns\)/);
    expect(refused(hostile('llama-tiny', { num_key_value_heads: 4 }))).toMatch(/"num_key_value_heads"=4 .*k_proj\.weight/);
    expect(refused(hostile('phi3-tiny', { num_key_value_heads: 8 }))).toMatch(/"num_key_value_heads"=8 .*qkv_proj\.weight has shape \[192,128\]/);
    expect(refused(hostile('gemma2-tiny', { intermediate_size: 1e8 }))).toMatch(/"intermediate_size"=100000000 .*down_proj\.weight/);
  });

  it('a config without weights beside it is only parsed', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'config-only-'));
    fs.copyFileSync(path.join(FIXTURES, 'qwen2-tiny', 'config.json'), path.join(dir, 'config.json'));
    expect(loadCheckedModelConfig(dir).family).toBe('llama');
  });
});
