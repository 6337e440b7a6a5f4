/**
 * The `weft` CLI from the outside, as users and the external checks run it:
 * real processes of the built CLI, real fixture files, JSON contracts, and
 * one clear line (no stack trace) with a non-zero exit for bad input.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
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

  it.each(['thread', 'tcp'])('--quantization int8 at tp 2, ranks as %s (CPU kernels, activations as Q8_0 blocks) matches the a8 reference; the unquantized weights are listed once', async (transport) => {
    const c = (JSON.parse(readFileSync(join(fixture('llama-tiny'), 'expected-q8_0-a8.json'), 'utf8')) as { cases: { input_ids: number[]; logits: number[] }[] }).cases[0]!;
    const r = await weft(['logits', '--model', fixture('llama-tiny'), '--ids', c.input_ids.join(','), '--tp', '2', '--transport', transport, '--quantization', 'int8', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.match(/kept unquantized/g)).toHaveLength(1);
    expect(r.stderr).toMatch(/model\.layers\.0\.mlp\.down_proj\.weight \(input dim 172 on this rank/);
    const { relL2 } = compareLogits((JSON.parse(r.stdout) as { logits: number[][] }).logits, c.logits);
    expect(relL2).toBeLessThanOrEqual(1.5e-2);
  });
});

describe('weft generate', () => {
  it('with no flags runs the embedded model and writes code', async () => {
    const r = await weft(['generate']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.startsWith('def fibonacci(n):\n')).toBe(true);
    expect(r.stdout.length).toBeGreaterThan('def fibonacci(n):\n'.length + 20);
  });

  it('--quantization int4 runs the embedded model (Q4_0 blocks packed at load) and writes code', async () => {
    const r = await weft(['generate', '--quantization', 'int4', '--max-tokens', '24']);
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
    [['generate', '--quantization', 'int3'], /--quantization must be one of int8 \(q8_0\), int4 \(q4_0\); got 'int3'/],
    [['generate', '--dtype', 'float16'], /--dtype must be one of float32, bfloat16; got 'float16'/],
    [['generate', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['logits', '--model', '/nonexistent-dir', '--ids', '1'], /--model \/nonexistent-dir: no such directory/],
    [['logits', '--model', join(fixture('llama-tiny'), 'config.json'), '--ids', '1'], /--model .*config\.json: not a directory/],
    [['logits', '--model', fixture('llama-tiny'), '--ids', '1', '--tp', '-1'], /--tp must be at least 1, got -1/],
    [['generate', '--pp', '-3'], /--pp must be at least 1, got -3/],
    [['logits', '--model', fixture('llama-tiny'), '--ids', '1', '--tp', '64'], /num_attention_heads=8 is not divisible by tp=64/],
    [['logits', '--model', fixture('llama-tiny'), '--ids', '1', '--pp', '8'], /pp=8 is more than num_hidden_layers=4/],
    [['generate', '--max-tokens', '2', '--trace', '/nonexistent-dir/trace.json'], /--trace \/nonexistent-dir\/trace\.json: the directory \/nonexistent-dir does not exist/],
    [['generate', '--max-tokens', '2', '--trace', tmpdir()], /--trace .*: is a directory/],
    [['launch', '--nproc-per-node', '3', '--', 'logits', '--model', fixture('llama-tiny'), '--ids', '1', '--tp', '3'], /num_attention_heads=8 is not divisible by tp=3/],
    [['serve', '--port', '70000'], /--port must be in 0\.\.65535/],
    [['serve', '--chat-template', '/nonexistent-template.jinja'], /--chat-template \/nonexistent-template\.jinja: cannot read it \(ENOENT\)/],
  ])('%j', async (args, message) => {
    const r = await weft(args);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('loading weights'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^weft: /);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // Checked before any rank starts: no weights were loaded.
    expect(r.stderr).not.toMatch(/rank \d+ failed|loading weights: 100%/);
  });

  it('an error after the echoed prompt starts its own line', async () => {
    const r = await weft(['generate', '--prompt', 'def f(x):', '--max-tokens', '5000']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('def f(x):\n');
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^weft: .*max/i);
  });
});

describe('each subcommand has its own --help', () => {
  it.each([
    ['generate', /--max-tokens/, /--world-size/],
    ['logits', /--json/, /--api-key/],
    ['layout', /--world-size/, /--max-tokens/],
    ['launch', /--nproc-per-node/, /--max-tokens/],
    ['serve', /--api-key.*\n[\s\S]*--chat-template[\s\S]*--tp N/, /--world-size/],
  ])('weft %s --help', async (cmd, has, hasNot) => {
    const r = await weft([cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: weft ${cmd}`));
    expect(r.stdout).toMatch(has);
    expect(r.stdout).not.toMatch(hasNot);
  });
});

describe('output through a pipe arrives whole', () => {
  // ~1 MB of JSON: 96 positions × 512 logits. The consumer waits before reading, so the 64 KiB pipe fills
  // and the CLI must wait for it to drain before exiting.
  const ids = Array.from({ length: 96 }, (_, i) => (i * 37 + 11) % 512).join(',');
  const consumer = `setTimeout(() => { let s = ''; process.stdin.on('data', (c) => (s += c)).on('end', () => { const j = JSON.parse(s); process.stdout.write(s.length + ' ' + j.logits.length + 'x' + j.logits[0].length); }); }, 200)`;
  // 4 runs (one batch) in CI; 12 with WEFT_FULL_MATRIX=1 (`npm run test:full`).
  const RUNS = Number(process.env.WEFT_PIPE_RUNS ?? (process.env.WEFT_FULL_MATRIX === '1' ? 12 : 4));
  it(`weft logits --json | consumer, ${RUNS} runs (4 at a time), every one whole`, async () => {
    const once = () =>
      promisify(execFile)('sh', ['-c', `"${process.execPath}" "${bin}" logits --model "${fixture('llama-tiny')}" --ids ${ids} --json --backend cpu 2>/dev/null | "${process.execPath}" -e "${consumer}"`], { cwd: root, timeout: 120_000 }).then((r) => r.stdout);
    const results: string[] = [];
    for (let i = 0; i < RUNS; i += 4) results.push(...(await Promise.all(Array.from({ length: Math.min(4, RUNS - i) }, once))));
    const sizes = new Set(results.map((r) => r.split(' ')[0]));
    expect(results.every((r) => / 96x512$/.test(r))).toBe(true);
    expect(sizes.size).toBe(1);
    expect(Number([...sizes][0])).toBeGreaterThan(900_000);
  });
});

describe('weft launch and signals', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s while ranks generate → exit %i, no rank left', async (sig, code) => {
    const child = spawn(process.execPath, [bin, 'launch', '--nproc-per-node', '2', '--', 'generate', '--model', fixture('llama-tiny'), '--ids', '1,2,3', '--tp', '2', '--max-tokens', '500', '--backend', 'cpu'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let ranks: number[] = [];
    const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.split(' ').length > 6 && !ranks.length) {
          ranks = spawnSync('pgrep', ['-P', String(child.pid)]).stdout.toString().split('\n').filter(Boolean).map(Number);
          child.kill(sig);
          resolve();
        }
      }),
    );
    expect(await exit).toBe(code);
    expect(ranks.length).toBe(2);
    for (const pid of ranks) expect(() => process.kill(pid, 0)).toThrow();
  });
});
