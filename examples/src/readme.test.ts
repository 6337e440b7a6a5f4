/**
 * Every code example in README.md runs as written: each ```js block as the
 * file its first line names (ESM and CommonJS, plain Node, no TypeScript), each
 * `npx weft …` line of the ```sh blocks as a real process of the built CLI, the
 * server block as a server the block's curl lines talk to. They run in a
 * scratch directory that sees the repository's node_modules, models and
 * fixtures, so nothing is written into the checkout. Commands that are CI's own
 * steps are named below with the reason; any other command fails the test
 * until this file knows how to run it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/^```(\w+)\n([\s\S]*?)^```/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));

/** CI's own steps: the README shows them, this test runs inside them. */
const NOT_RUN: Record<string, string> = {
  'npm ci': "CI's install step (this test runs after it)",
  'npm test': 'runs this very test',
  'npm run setup:tensorflow': 'a CI step before npm test',
};

const work = mkdtempSync(join(tmpdir(), 'weft-readme-'));
for (const d of ['node_modules', 'models', 'fixtures']) symlinkSync(join(root, d), join(work, d));

function run(cmd: string, args: string[], timeout = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: work, timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** `sh` words of one README line (single and double quotes; no other shell syntax is used there). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** The commands of a sh block: comments dropped, `a && b` split. */
function commands(code: string): string[] {
  return code
    .split('\n')
    .map((l) => l.replace(/\s{2,}#.*$/, '').trim())
    .filter((l) => l && !l.startsWith('#'))
    .flatMap((l) => l.split(' && ').map((c) => c.trim()));
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function waitHealthy(port: number, server: ChildProcess, log: () => string): Promise<void> {
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    if (server.exitCode !== null) throw new Error(`weft serve exited with ${server.exitCode}: ${log()}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`weft serve did not become healthy in 120 s: ${log()}`);
}

describe('README.md examples run as written', () => {
  it('has the examples this test knows how to run', () => {
    expect(blocks.map((b) => b.lang)).toEqual(expect.arrayContaining(['sh', 'js']));
    for (const b of blocks) expect(['sh', 'js'], `a \`\`\`${b.lang} block: this test runs only sh and js`).toContain(b.lang);
  });

  for (const [i, b] of blocks.entries()) {
    if (b.lang === 'js') {
      const file = /^\/\/ (\S+\.(?:mjs|cjs))\b/.exec(b.code)?.[1];
      it(`js block ${i}: ${file ?? '(no file name)'}`, async () => {
        expect(file, 'a js block starts with a comment naming its file (// example.mjs)').toBeDefined();
        writeFileSync(join(work, file!), b.code);
        const r = await run(process.execPath, [file!]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.trim().length).toBeGreaterThan(0);
        expect(r.stdout).not.toContain('<|end_of_text|>');
      });
      continue;
    }
    const cmds = commands(b.code);
    if (cmds[0]?.startsWith('npx weft serve')) {
      it(`sh block ${i}: the server and the curl lines that use it`, async () => {
        // As written on port 8000; if something else holds it on this machine, the same commands on a free port.
        let port = 8000;
        if (!(await portFree(port))) {
          const s = createServer();
          await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
          port = (s.address() as { port: number }).port;
          await new Promise((r) => s.close(r));
        }
        const fix = (c: string) => (port === 8000 ? c : c.replace('localhost:8000', `localhost:${port}`));
        const [, , ...serveArgs] = words(cmds[0]!);
        let log = '';
        const server = spawn('npx', ['weft', ...serveArgs, ...(port === 8000 ? [] : ['--port', String(port)])], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
        server.stdout!.on('data', (d) => (log += d));
        server.stderr!.on('data', (d) => (log += d));
        try {
          await waitHealthy(port, server, () => log);
          for (const c of cmds.slice(1)) {
            const [cmd, ...args] = words(fix(c));
            expect(cmd, `${c}: only curl lines follow the server`).toBe('curl');
            const r = await run(cmd!, args, 120_000);
            expect(r.code, `${c}\n${r.stderr}`).toBe(0);
            expect(r.stdout).not.toContain('<|end_of_text|>');
            if (args.includes('-sN')) expect(r.stdout).toContain('data: [DONE]');
            else expect(typeof (JSON.parse(r.stdout) as { choices: { text: string }[] }).choices[0]!.text).toBe('string');
          }
        } finally {
          server.kill('SIGTERM');
          await new Promise((r) => (server.exitCode !== null ? r(null) : server.once('exit', r)));
        }
      });
      continue;
    }
    for (const c of cmds) {
      if (NOT_RUN[c]) {
        it.skip(`sh block ${i}: ${c} (not run: ${NOT_RUN[c]})`, () => {});
        continue;
      }
      it(`sh block ${i}: ${c}`, async () => {
        const [npx, weft, ...args] = words(c);
        expect([npx, weft], `${c}: a README command this test does not know how to run`).toEqual(['npx', 'weft']);
        const r = await run('npx', ['weft', ...args]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.trim().length).toBeGreaterThan(0);
        expect(r.stdout).not.toContain('<|end_of_text|>');
        if (args.includes('--json')) JSON.parse(r.stdout);
      });
    }
  }
});
