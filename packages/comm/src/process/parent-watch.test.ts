import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { transformSync } from 'esbuild';
import { describe, expect, it } from 'vitest';

// The child runs plain JavaScript (no TypeScript loader in its way): watchParent's source, compiled here.
const dir = mkdtempSync(join(tmpdir(), 'weft-parent-watch-'));
const watch = join(dir, 'parent-watch.mjs');
writeFileSync(watch, transformSync(readFileSync(fileURLToPath(new URL('./parent-watch.ts', import.meta.url)), 'utf8'), { loader: 'ts', format: 'esm' }).code);
const watchUrl = pathToFileURL(watch).href;

/** Is a pid alive? */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('watchParent', () => {
  it('a busy grandchild exits soon after its parent is SIGKILLed', async () => {
    // parent (a shell) → child (node, keeps an interval busy and watches its parent); kill the shell.
    const childSrc = `import(${JSON.stringify(watchUrl)}).then(({ watchParent }) => { watchParent(() => process.exit(7), 100); setInterval(() => {}, 1000); console.log(String(process.pid)); });`;
    const shell = spawn('sh', ['-c', `"${process.execPath}" --input-type=module -e '${childSrc}'; sleep 60`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_CHANNEL_FD: undefined, NODE_CHANNEL_SERIALIZATION_MODE: undefined, NODE_OPTIONS: undefined },
    });
    let out = '';
    shell.stderr.on('data', (d: Buffer) => (out += d));
    const pid = await new Promise<number>((resolve, reject) => {
      shell.stdout.on('data', (d: Buffer) => {
        out += d;
        const m = /^(\d+)$/m.exec(out);
        if (m) resolve(Number(m[1]));
      });
      shell.once('exit', () => reject(new Error(`the child never started: ${out}`)));
    });
    expect(alive(pid), out).toBe(true);
    shell.kill('SIGKILL');
    const t0 = Date.now();
    while (alive(pid) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(alive(pid)).toBe(false);
  });
});
