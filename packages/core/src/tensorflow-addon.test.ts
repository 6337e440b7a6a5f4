/**
 * Which tfjs-node addon is safe with several rank threads in one process: the one scripts/setup-tensorflow.sh
 * builds (its ATTR_NAME_SET insert under a mutex, marked in the binary), not the stock one (issue 17: heap
 * corruption at tp 2). Checked on the real installed addon and on a copy whose mark is gone.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend, tensorflowInstalled } from './backend.js';

const installed = tensorflowInstalled();
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe.skipIf('missing' in installed)('the tensorflow addon and rank threads', () => {
  it('the addon setup:tensorflow built is marked thread-safe', () => {
    expect(installed).toMatchObject({ threadSafe: true });
  });

  it('a stock addon (no mark) is reported as not thread-safe', () => {
    const pkg = (installed as { pkg: string }).pkg;
    const root = dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
    const tmp = mkdtempSync(join(tmpdir(), 'weft-tf-'));
    dirs.push(tmp);
    const dest = join(tmp, 'node_modules', pkg);
    mkdirSync(join(dest, 'lib', 'napi-v8'), { recursive: true });
    copyFileSync(join(root, 'package.json'), join(dest, 'package.json'));
    const bytes = readFileSync(join(root, 'lib', 'napi-v8', 'tfjs_binding.node'));
    const at = bytes.indexOf('weft-patch:');
    expect(at).toBeGreaterThan(0);
    bytes.fill(0x78, at, at + 11);
    writeFileSync(join(dest, 'lib', 'napi-v8', 'tfjs_binding.node'), bytes);
    expect(tensorflowInstalled(pathToFileURL(join(tmp, 'index.js')))).toEqual({ pkg, threadSafe: false });
  });

  it('with the thread-safe addon, tensorflow loads for a rank that shares its process with others', async () => {
    await expect(initBackend({ prefer: 'tensorflow', threadRanks: 2 })).resolves.toMatchObject({ name: 'tensorflow' });
  });
});
if ('missing' in installed) console.log(`SKIPPED (tensorflow addon tests): ${installed.missing}`);
