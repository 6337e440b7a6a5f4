/**
 * The addon's pool threads outlive the worker thread that started them. Node unloads an addon when the last
 * environment that loaded it ends (a rank's worker thread at exit); the detached pool threads then ran
 * unmapped code: SIGSEGV at exit in about 1 of 5 `weft generate --dtype bfloat16` runs. Each child process here
 * loads the addon only in a worker thread, runs 2-thread gemms there, lets the worker end and exits: every
 * child must exit 0 (the addon pins itself with RTLD_NODELETE).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ADDON_FILE, loadNative } from './native.js';

const addonFile = fileURLToPath(new URL(`../${ADDON_FILE}`, import.meta.url));

const CHILD = (addon: string) => `
const { Worker } = require('node:worker_threads');
const src = ${JSON.stringify(`
const addon = require(${JSON.stringify(addon)});
const m = 1, k = 2048, n = 4096;
const x = new Float32Array(m * k).fill(0.5), w = new Uint16Array(n * k).fill(0x3f80), out = new Float32Array(m * n);
for (let i = 0; i < 20; i++) addon.gemmBf16(0, 2, x, m, k, w, n, out);
require('node:worker_threads').parentPort.postMessage('done');
`)};
const w = new Worker(src, { eval: true });
w.on('message', () => void w.terminate());
w.on('exit', () => setTimeout(() => process.exit(0), 5));
`;

function child(addon: string): Promise<number | string> {
  return new Promise((resolve) => {
    const p = execFile(process.execPath, ['-e', CHILD(addon)], { timeout: 60_000 }, () => resolve(p.exitCode ?? p.signalCode ?? 'none'));
  });
}

describe('the addon unloaded with the worker that loaded it', () => {
  it.skipIf(!loadNative().addon)('leaves no pool thread running unmapped code: 24 processes exit 0', async () => {
    const codes: (number | string)[] = [];
    for (let i = 0; i < 12; i++) codes.push(...(await Promise.all([child(addonFile), child(addonFile)])));
    expect(codes).toEqual(Array(24).fill(0));
  }, 120_000);
});
