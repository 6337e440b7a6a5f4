/**
 * An idle engine lets its rank threads stop holding the process open (a forgotten close() no longer
 * hangs a script), but never while a call still waits on the ranks. Each case is its own Node process.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const index = fileURLToPath(new URL('./index.ts', import.meta.url));
const model = fileURLToPath(new URL('../../../fixtures/llama-tiny', import.meta.url));

function run(body: string): Promise<{ code: number | null; out: string }> {
  const src = `const { LLM } = await import(${JSON.stringify(index)});\nconst llm = await LLM.load(${JSON.stringify(model)}, { backend: 'wasm' });\n${body}`;
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', src], { timeout: 120_000 }, (_e, stdout) =>
      resolve({ code: child.exitCode, out: stdout.trim() }),
    );
  });
}

describe('an idle engine and the process', () => {
  it('full-sequence logits complete although nothing else keeps the process alive; never closing exits 0', async () => {
    const r = await run(`await new Promise((r) => setTimeout(r, 200));\nconst rows = await llm.logits([1, 2, 3]);\nconsole.log(String(rows.length));\nconst [g] = await llm.generate([[1, 2, 3]], { maxTokens: 3, ignoreEos: true });\nconsole.log(String(g.tokenIds.length));`);
    expect(r).toEqual({ code: 0, out: '3\n3' });
  });
});
