/**
 * `weft launch` refuses, in one line and before any rank process starts, a
 * command its ranks could not run: a rank count the layout does not use, a
 * layout the embedded model (no --model) cannot take, `serve DIR`'s model
 * checked as --model's, vLLM's layout spellings read as weft's, an unknown
 * command. Each used to start every rank, which each printed the error, then
 * the launcher's summary of them (3–4 lines).
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
    execFile(process.execPath, [bin, ...args], { cwd: root, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('weft launch checks the command before any rank starts', () => {
  it.each([
    [['--nproc-per-node', '3', '--', 'generate', '--tp', '2'], 2, 'weft: --nproc-per-node 3 starts 3 rank(s), but tp 2 × pp 1 × dp 1 needs 2'],
    [['--nproc-per-node', '2', '--', 'generate', '--tensor-parallel-size', '2', '-pp', '2'], 2, 'weft: --nproc-per-node 2 starts 2 rank(s), but tp 2 × pp 2 × dp 1 needs 4'],
    [['--nproc-per-node', '2', '--nnodes', '2', '--node-rank', '1', '--master-addr', '10.0.0.1', '--', 'generate', '--tp', '2'], 2, 'weft: --nproc-per-node 2 × --nnodes 2 = 4 ranks, but tp 2 × pp 1 × dp 1 needs 2'],
    [['--nproc-per-node', '3', '--', 'generate', '--tp', '3'], 1, 'weft: num_attention_heads=8 is not divisible by tp=3 (choose tp from 1, 2, 4, 8)'],
    [['--nproc-per-node', '3', '--', 'serve', llamaTiny, '--tp', '3'], 1, 'weft: num_attention_heads=8 is not divisible by tp=3 (choose tp from 1, 2, 4, 8)'],
    [['--nproc-per-node', '2', '--', 'bogus'], 2, "weft: launch starts the ranks of generate, logits, serve; got 'bogus'"],
  ])('launch %j: exit %i, one line', async (args, code, line) => {
    const r = await weft(['launch', ...args]);
    expect(r.code).toBe(code);
    expect(r.stderr).toBe(`${line}\n`);
    expect(r.stdout).toBe('');
  });

  it('a layout that fits still runs (vLLM spellings included)', async () => {
    const r = await weft(['launch', '--nproc-per-node', '2', '--', 'generate', '--model', llamaTiny, '--ids', '5,6,7', '-tp', '2', '--max-tokens', '3', '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^5 6 7( \d+){3}\n$/);
  });
});
