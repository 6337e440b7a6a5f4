/**
 * The `weft` CLI from the outside, as users and the external checks run it:
 * real processes of the built CLI, real fixture files, JSON contracts, and
 * one clear line (no stack trace) with a non-zero exit for bad input.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { compareLogits, loadFixtureCases } from '@weft/layers';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'examples/bin/weft.js');
const fixture = (name: string) => join(root, 'fixtures', name);

async function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { cwd: root, maxBuffer: 64 << 20, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

describe('weft layout', () => {
  it('prints vLLM group rank lists as JSON', async () => {
    const r = await weft(['layout', '--world-size', '8', '--tp', '2', '--pp', '2', '--dp', '2', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      tp: [[0, 1], [2, 3], [4, 5], [6, 7]],
      pp: [[0, 2], [1, 3], [4, 6], [5, 7]],
      dp: [[0, 4], [2, 6], [1, 5], [3, 7]],
      ep: [[0, 1, 4, 5], [2, 3, 6, 7]],
    });
  });
});

describe('weft logits matches Hugging Face through the CLI', () => {
  it.each([
    ['llama-tiny', ['--tp', '2', '--pp', '2']],
    ['deepseek-v3-tiny', ['--tp', '2', '--dp', '2', '--enable-expert-parallel']],
  ])('%s %s', async (name, layout) => {
    const [c] = loadFixtureCases(fixture(name));
    const r = await weft(['logits', '--model', fixture(name), '--ids', c!.input_ids.join(','), ...layout, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { logits } = JSON.parse(r.stdout) as { logits: number[][] };
    expect(logits).toHaveLength(c!.logits_shape[0]);
    expect(logits[0]).toHaveLength(c!.logits_shape[1]);
    const { maxAbs, relL2 } = compareLogits(logits, c!.logits);
    expect(maxAbs).toBeLessThanOrEqual(1e-3);
    expect(relL2).toBeLessThanOrEqual(1e-4);
  });
});

describe('weft generate', () => {
  it('with no flags runs the embedded model and writes code', async () => {
    const r = await weft(['generate']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.startsWith('def fibonacci(n):\n')).toBe(true);
    expect(r.stdout.length).toBeGreaterThan('def fibonacci(n):\n'.length + 20);
  });

  it('streams what Hugging Face generates greedily, at tp 2', async () => {
    const expected = JSON.parse(readFileSync(join(root, 'models/weft-tiny-code/expected.json'), 'utf8')) as {
      cases: { prompt: string; greedy_text: string }[];
    };
    const c = expected.cases[1]!;
    const r = await weft(['generate', '--prompt', c.prompt, '--max-tokens', '32', '--tp', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${c.prompt}${c.greedy_text}\n`);
  });
});

describe('weft generate --trace', () => {
  it('writes a per-rank Chrome trace with layer and collective spans', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'weft-trace-')), 'trace.json');
    const r = await weft(['generate', '--tp', '2', '--pp', '2', '--max-tokens', '3', '--trace', file]);
    expect(r.code, r.stderr).toBe(0);
    const { traceEvents } = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: { name: string; ph: string; tid: number; dur: number }[] };
    expect(new Set(traceEvents.map((e) => e.tid))).toEqual(new Set([0, 1, 2, 3]));
    expect(traceEvents.every((e) => e.ph === 'X' && e.dur >= 0)).toBe(true);
    const names = new Set(traceEvents.map((e) => e.name.replace(/\d+/g, 'N')));
    for (const n of ['layer N', 'tp:N allReduce', 'pp:N sendTensorDict', 'pp:N recvTensorDict', 'lm_head', 'step N']) expect(names, n).toContain(n);
  });
});

describe('bad input: one clear line, non-zero exit, no stack trace', () => {
  const truncated = mkdtempSync(join(tmpdir(), 'weft-trunc-'));
  copyFileSync(join(fixture('llama-tiny'), 'config.json'), join(truncated, 'config.json'));
  writeFileSync(join(truncated, 'model.safetensors'), readFileSync(join(fixture('llama-tiny'), 'model.safetensors')).subarray(0, 100_000));

  it.each([
    [['logits', '--model', truncated, '--ids', '1,2'], /model\.safetensors.*(truncated|past)/],
    [['logits', '--model', fixture('llama-tiny'), '--ids', '1,2', '--tp', '3'], /num_attention_heads=8 is not divisible by tp=3 \(choose tp from 1, 2, 4, 8\)/],
    [['layout', '--world-size', '6', '--tp', '2', '--pp', '2'], /world size 6 does not match tp×pp×dp = 2×2×1 = 4/],
    [['logits', '--model', fixture('llama-tiny'), '--ids', '1,x'], /--ids must be a comma-separated list of token ids/],
    [['generate', '--backend', 'nope'], /--backend must be one of/],
    [['generate', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['logits', '--model', '/nonexistent-dir', '--ids', '1'], /--model \/nonexistent-dir: no such directory/],
  ])('%j', async (args, message) => {
    const r = await weft(args);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('loading weights'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^weft: /);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
