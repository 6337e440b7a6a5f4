#!/usr/bin/env node
/**
 * `npm test`: every package's tests through nx (one package at a time, as before), then a list of what
 * did not run and why. Suites that need something CI installs first (Open MPI, Mesa EGL, Chromium, the
 * tensorflow backend) print `SKIPPED <what>: <why>` and pass; vitest's own skips show as `↓ … [skipped]`.
 * Both are collected from the output, so a plain `npm test` says which of CI's suites it did not run.
 * Extra arguments go to nx (e.g. `npm test -- --projects=@weft/engine`).
 *
 * `npm run test:full` (`--full`): the same with every matrix CI trims (the benches' machine runs it):
 * WEFT_FULL_MATRIX=1 (every layout, backend and family of the parity, plan and batching suites; the CLI pipe
 * and Dawn exit loops at full length) and
 * WEFT_TF_EXIT_RUNS=200 (the tensorflow CLI exit loop; 8 in CI).
 */
import { spawn } from 'node:child_process';

const full = process.argv.includes('--full');
const extra = process.argv.slice(2).filter((a) => a !== '--full');
const env = full ? { ...process.env, WEFT_FULL_MATRIX: '1', WEFT_TF_EXIT_RUNS: process.env.WEFT_TF_EXIT_RUNS ?? '200' } : process.env;
const args = ['nx', 'run-many', '-t', 'test', '--output-style=stream', '--parallel=1', ...extra];
const child = spawn('npx', args, { stdio: ['inherit', 'pipe', 'pipe'], env });
const skipped = new Map();
const plain = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

function watch(stream, out) {
  let rest = '';
  stream.on('data', (chunk) => {
    out.write(chunk);
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const raw of lines) {
      const line = plain(raw);
      // nx prefixes streamed lines with the project: "@weft/engine: …".
      const m = /^(\S+?):\s+(.*)$/.exec(line);
      const [project, text] = m && m[1].startsWith('@') ? [m[1], m[2]] : ['', line.trim()];
      const where = `${project}${project ? ': ' : ''}`;
      if (/\bSKIPPED\b/.test(text) || /↓ .*\[skipped\]/.test(text)) skipped.set(`${where}${text.trim()}`, true);
      const n = /^Tests\s.*?(\d+) skipped/.exec(text);
      if (n) skipped.set(`${where}${n[1]} test(s) marked skip by vitest (it.skip / skipIf)`, true);
    }
  });
}
watch(child.stdout, process.stdout);
watch(child.stderr, process.stderr);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));

child.on('close', (code, signal) => {
  const lines = [...skipped.keys()];
  process.stdout.write(`\nnpm test: ${lines.length === 0 ? 'nothing was skipped' : `${lines.length} skipped (CI's .ci/run installs what they need first):`}\n`);
  for (const l of lines) process.stdout.write(`  ${l}\n`);
  process.exit(code ?? (signal ? 1 : 0));
});
