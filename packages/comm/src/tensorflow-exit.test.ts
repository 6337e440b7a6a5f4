/**
 * Processes whose rank threads loaded TensorFlow exit 0, after a successful run and after ranks that
 * failed during start-up (before libtensorflow was pinned, the second crashed with SIGSEGV every time).
 * Each case runs in its own Node process: the crash happens in exit().
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tensorflowInstalled } from '@weft/core';
import { describe, expect, it } from 'vitest';

const tf = tensorflowInstalled();
const launcher = fileURLToPath(new URL('./index.ts', import.meta.url));
const entry = fileURLToPath(new URL('./test-entries/tf-sum.ts', import.meta.url));

function run(body: string): Promise<{ status: number | null; signal: string | null; out: string }> {
  const src = `const { spawnRanks } = await import(${JSON.stringify(launcher)});\nconst entry = ${JSON.stringify(entry)};\n${body}`;
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', src], { timeout: 120_000 }, (_e, stdout, stderr) => {
      resolve({ status: child.exitCode, signal: child.signalCode, out: `${stdout}${stderr}`.trim().split('\n').slice(-3).join(' | ') });
    });
  });
}

describe.skipIf('missing' in tf)('tensorflow rank threads and process exit', () => {
  it('ranks that fail during start-up: the error is reported and the process exits 0 (3 runs)', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await run(`const e = await spawnRanks({ parallel: { tp: 2 }, entry, exportName: 'nope', backend: 'tensorflow' }).catch((e) => e);\nconsole.log(e.message.includes("does not export a function 'nope'") ? 'reported' : e.message);`);
      expect({ ...r, run: i }).toEqual({ status: 0, signal: null, out: 'reported', run: i });
    }
  });
  it('a pool that computed and closed: the ranks end by themselves and the process exits 0 (3 runs)', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await run(`const pool = await spawnRanks({ parallel: { tp: 2 }, entry, backend: 'tensorflow' });\nconst got = [];\npool.onMessage((_r, m) => got.push(m));\nawait pool.broadcast({});\npool.close();\nconst ranks = await pool.results();\nawait pool.terminate();\nconsole.log(JSON.stringify({ ranks, got }));`);
      expect({ ...r, run: i }).toEqual({ status: 0, signal: null, out: JSON.stringify({ ranks: [0, 1], got: [4096 * 64, 4096 * 64] }), run: i });
    }
  });
  it('an unref()ed idle pool nobody closed lets the process exit 0', async () => {
    const r = await run(`const pool = await spawnRanks({ parallel: { tp: 2 }, entry, backend: 'tensorflow' });\npool.onMessage((_r, m) => console.log(String(m)));\nawait pool.broadcast({});\nsetTimeout(() => pool.unref(), 500);`);
    expect({ status: r.status, signal: r.signal, lines: r.out.split(' | ').map((l) => l.trim()) }).toEqual({ status: 0, signal: null, lines: [String(4096 * 64), String(4096 * 64)] });
  });
});
if ('missing' in tf) console.log(`SKIPPED (tensorflow exit tests): ${tf.missing}`);
