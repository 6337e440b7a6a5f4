/**
 * The webgpu and tensorflow backends in one process, in both orders. webgpu first used to kill the process
 * with SIGSEGV while libtensorflow loaded: Dawn's OpenGL fallback starts Mesa's llvmpipe, whose driver
 * loader puts libLLVM in the global scope, and TensorFlow's own LLVM bound its static initializers to it
 * (seen in @weft/layers' single vitest fork as ERR_IPC_CHANNEL_CLOSED when the webgpu tests ran before
 * attention.test.ts). Each order runs in its own Node process: the crash is in the dlopen.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tensorflowInstalled } from './backend.js';

const tf = tensorflowInstalled();
const core = fileURLToPath(new URL('./index.ts', import.meta.url));

function run(order: string[]): Promise<{ status: number | null; signal: string | null; out: string[] }> {
  const src = [
    `const { initBackend } = await import(${JSON.stringify(core)});`,
    `const tf = await import('@tensorflow/tfjs-core');`,
    `for (const prefer of ${JSON.stringify(order)}) {`,
    `  const info = await initBackend({ prefer });`,
    `  const x = tf.tensor2d([[1, 2], [3, 4]]);`,
    `  console.log('ran', info.name, Array.from(await tf.matMul(x, x).data()).join(','));`,
    `}`,
  ].join('\n');
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', src], { timeout: 120_000 }, (_e, stdout) => {
      resolve({ status: child.exitCode, signal: child.signalCode, out: stdout.split('\n').filter((l) => l.startsWith('ran ')) });
    });
  });
}

describe.skipIf('missing' in tf)('webgpu and tensorflow in one process', () => {
  for (const order of [['webgpu', 'tensorflow'], ['tensorflow', 'webgpu']]) {
    it(`${order.join(' then ')}: both compute and the process exits 0`, async () => {
      const r = await run(order);
      // Where Dawn finds no adapter, initBackend falls back (its name says so): tensorflow must still load after it.
      expect(r.status, `exit ${r.status} / ${r.signal}`).toBe(0);
      expect(r.out).toHaveLength(2);
      expect(r.out[order.indexOf('tensorflow')]).toBe('ran tensorflow 7,10,15,22');
      expect(r.out.every((l) => l.endsWith(' 7,10,15,22'))).toBe(true);
    });
  }
});
if ('missing' in tf) console.log(`SKIPPED (webgpu and tensorflow in one process): ${tf.missing}`);
