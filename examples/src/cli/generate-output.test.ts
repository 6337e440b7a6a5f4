/**
 * What `weft generate` prints, from the outside (the built CLI): on a model
 * without a tokenizer, the prompt ids and each new id one space apart (the
 * last prompt id once ran into the first new one: `5 6 7184 443`), and on
 * stderr which backend it picked.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const weft = (args: string[]) => promisify(execFile)(process.execPath, [join(root, 'examples/bin/weft.js'), ...args], { cwd: root, timeout: 120_000 });

describe('weft generate output', () => {
  it('--ids on a model without a tokenizer: prompt ids, then every new id, one space apart; stderr names the backend', async () => {
    const { stdout, stderr } = await weft(['generate', '--model', join(root, 'fixtures/llama-tiny'), '--ids', '5,6,7', '--max-tokens', '4']);
    expect(stdout).toMatch(/^5 6 7( \d+){4}\n$/);
    expect(stderr).toMatch(/weft: (tensorflow|wasm|cpu|webgpu) backend \(picked automatically; --backend chooses\), 1 rank\(s\)/);
    const chosen = await weft(['generate', '--model', join(root, 'fixtures/llama-tiny'), '--ids', '5,6,7', '--max-tokens', '4', '--backend', 'cpu', '--tp', '2']);
    expect(chosen.stdout).toBe(stdout);
    expect(chosen.stderr).toMatch(/weft: cpu backend, 2 rank\(s\)/);
  });

  it.each([
    [['--stop', ''], 'weft: --stop must not be empty'],
    [['--prompt', ''], 'weft: --prompt must not be empty'],
    [['--prompt', 'a', '--prompt', ''], 'weft: --prompt must not be empty'],
  ])('%j: exit 2 with one line, before any rank loads (was the engine error after loading)', async (args, line) => {
    const r = await weft(['generate', ...args]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${line}\n`);
  });
});
