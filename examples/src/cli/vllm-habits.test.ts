/**
 * What a user coming from vLLM or HF types, against the built CLI in its own
 * process: vLLM's layout spellings (`--tensor-parallel-size 2`, `-tp 2`),
 * `weft serve DIR` (vLLM's `vllm serve MODEL`: serve.test.ts), a bare word where an option
 * belongs (one line saying which option it could be), and a text prompt for a
 * model without tokenizer.json (was `TypeError: p.join is not a function`
 * after the ranks had loaded).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'examples/bin/weft.js');
const llamaTiny = join(root, 'fixtures/llama-tiny');

function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** One line on stderr, no stack trace, no "TypeError". */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l && !l.startsWith('loading weights'));
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/TypeError|\n\s+at /);
  return lines[0]!;
}

describe('vLLM spellings of the layout options', () => {
  it('--tensor-parallel-size 2 and -tp 2 -pp=2 run the layouts --tp 2 and --tp 2 --pp 2 do, with the same output', async () => {
    const ids = ['generate', '--model', llamaTiny, '--ids', '5,6,7', '--max-tokens', '4', '--backend', 'cpu'];
    const [ours, theirs, ours4, theirs4] = await Promise.all([
      weft([...ids, '--tp', '2']),
      weft([...ids, '--tensor-parallel-size', '2']),
      weft([...ids, '--tp', '2', '--pp', '2']),
      weft([...ids, '-tp', '2', '-pp=2']),
    ]);
    for (const r of [ours, theirs, ours4, theirs4]) expect(r.code, r.stderr).toBe(0);
    expect(theirs.stderr).toMatch(/cpu backend, 2 rank\(s\)/);
    expect(theirs4.stderr).toMatch(/cpu backend, 4 rank\(s\)/);
    expect(theirs.stdout).toBe(ours.stdout);
    expect(theirs4.stdout).toBe(ours4.stdout);
    // The alias gets the same checks as --tp.
    const bad = await weft(['generate', '--model', llamaTiny, '--ids', '1', '--tensor-parallel-size', '0']);
    expect(bad.code).toBe(2);
    expect(oneLine(bad.stderr)).toBe('weft: --tp must be at least 1, got 0');
  });
});

describe("vLLM's scheduler flags", () => {
  it.each([
    [['--max-model-len', '5000'], 'weft: --max-model-len must be in 2..512 (the model\'s max_position_embeddings), got 5000'],
    [['--max-model-len', '0'], 'weft: --max-model-len must be at least 1, got 0'],
    [['--max-num-seqs', 'x'], "weft: --max-num-seqs must be a whole number, got 'x'"],
    [['--enable-prefix-caching', '--no-enable-prefix-caching'], 'weft: give --enable-prefix-caching or --no-enable-prefix-caching, not both'],
  ])('%j: exit 2, one line, before any rank starts', async (args, line) => {
    const r = await weft(['generate', '--model', llamaTiny, '--ids', '1', ...args]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(line);
  });

  it('--max-model-len 16 --block-size 4 --max-num-batched-tokens 8 run (a 12-token answer in 8-token chunks)', async () => {
    const r = await weft(['generate', '--model', llamaTiny, '--ids', '5,6,7', '--max-tokens', '12', '--max-model-len', '16', '--block-size', '4', '--max-num-batched-tokens', '8', '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^5 6 7( \d+){12}\n$/);
    const over = await weft(['generate', '--model', llamaTiny, '--ids', '5,6,7', '--max-tokens', '14', '--max-model-len', '16', '--backend', 'cpu']);
    expect(over.code).toBe(1);
    expect(over.stderr).toMatch(/is more than maxModelLen 16/);
  });
});

describe('a bare word where an option belongs', () => {
  it('names the option it could be: --prompt for text, --model for a model directory', async () => {
    const text = await weft(['generate', 'def f(x):']);
    expect(text.code).toBe(2);
    expect(oneLine(text.stderr)).toBe(`weft: unexpected argument 'def f(x):': this command takes only --options (a prompt: give it as --prompt "def f(x):")`);
    const dir = await weft(['logits', llamaTiny, '--ids', '1']);
    expect(dir.code).toBe(2);
    expect(oneLine(dir.stderr)).toContain(`(a model directory: give it as --model ${llamaTiny})`);
  });

  it('weft serve with both a directory and --model, or two directories, refuses the extra word', async () => {
    const r = await weft(['serve', llamaTiny, '--model', llamaTiny, '--port', '0']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/^weft: unexpected argument '.*llama-tiny'/);
  });
});

describe('a text prompt for a model without tokenizer.json', () => {
  it.each([
    [['generate'], 'the default prompt "def fibonacci(n):\\n"'],
    [['generate', '--prompt', 'hi'], 'a --prompt'],
    [['generate', '--prompt', 'a', '--prompt', 'b'], 'a --prompt'],
    [['logits', '--prompt', 'hi'], 'a --prompt'],
  ])('%j: one line naming the directory and --ids, exit 1, before any rank starts', async (args, what) => {
    const r = await weft([...args, '--model', llamaTiny]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe(`weft: --model ${llamaTiny} has no tokenizer.json, so ${what} cannot be tokenized: give the prompt as token ids (--ids 1,2,3)`);
    expect(r.stdout).toBe('');
  });

  it('serve: --served-model-name and --api-key must not be empty', async () => {
    for (const k of ['--served-model-name', '--api-key']) {
      const r = await weft(['serve', '--model', llamaTiny, '--port', '0', k, '']);
      expect(r.code).toBe(2);
      expect(oneLine(r.stderr)).toBe(`weft: ${k} must not be empty`);
    }
  });
});
