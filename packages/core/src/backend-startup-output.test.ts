/**
 * What a backend's start prints besides weft's own lines. tfjs's cpu backend greets Node users with "install our
 * node backend" on its first tensor: weft chose it (asked for, or the last in order), so the banner is noise.
 * The webgpu backend asks Dawn for a Vulkan adapter only where the Vulkan loader loads: on a machine without
 * libvulkan.so.1 (CPU-only machines, CI: Dawn's OpenGL fallback) Dawn used to print "Couldn't load Vulkan:
 * libvulkan.so.1: cannot open shared object file" and a stack line to stderr at every start, for nothing.
 * The loader's presence is checked against a second oracle (the dynamic loader's cache and LD_LIBRARY_PATH);
 * a real start in a child process shows what a user's terminal shows.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { vulkanLoaderPresent } from './pin-gpu-libraries.js';

const core = fileURLToPath(new URL('./index.ts', import.meta.url));

/** libvulkan.so.1 in ld.so.cache or an LD_LIBRARY_PATH folder (Linux). */
function loaderListed(): boolean {
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  if (dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return true;
  try {
    return /libvulkan\.so\.1\b/.test(execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' }));
  } catch {
    return ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu'].some((d) => existsSync(join(d, 'libvulkan.so.1')));
  }
}

function start(prefer: 'webgpu' | 'cpu'): Promise<{ status: number | null; stderr: string; name: string }> {
  const src = [
    `const { initBackend } = await import(${JSON.stringify(core)});`,
    `const tf = await import('@tensorflow/tfjs-core');`,
    `const info = await initBackend({ prefer: '${prefer}' });`,
    `tf.add(tf.tensor1d([1, 2]), 1).dataSync();`,
    `console.log('backend', info.name);`,
  ].join('\n');
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', src], { timeout: 120_000 }, (_e, stdout, stderr) => {
      resolve({ status: child.exitCode, stderr, name: /backend (\S+)/.exec(stdout)?.[1] ?? '' });
    });
  });
}

describe('the cpu backend', () => {
  it('computes without tfjs\'s "install our node backend" banner', async () => {
    const r = await start('cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.name).toBe('cpu');
    expect(r.stderr).not.toMatch(/node backend|Hi, looks like/);
  }, 130_000);
});

describe.runIf(process.platform === 'linux')('the Vulkan loader probe', () => {
  it('agrees with the dynamic loader cache', () => {
    expect(vulkanLoaderPresent()).toBe(loaderListed());
  });

  it.runIf(!loaderListed())('without libvulkan, starting webgpu prints nothing about Vulkan', async () => {
    const r = await start('webgpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.name).toBe('webgpu');
    expect(r.stderr).not.toMatch(/Vulkan/i);
  }, 130_000);
});
