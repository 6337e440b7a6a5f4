/**
 * What Dawn (npm `webgpu`) offers weft's kernels, asked twice: on a default instance and on one with
 * `allow_unsafe_apis`, where Dawn lists its experimental features (chromium-experimental-subgroup-matrix: on the
 * H200 8-bit integer tensor-core configurations only; the default instance hides them). Each instance gets
 * gpu-probe.ts's probe: features, limits, subgroups, and each subgroup-matrix configuration multiplied, checked
 * against the CPU and timed.
 *
 * usage: node examples/dist/bench/dawn-probe.js [--backend vulkan|opengl] [--out dawn-probe.json]
 */
/// <reference types="@webgpu/types" />
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { prepareWebgpuEnvironment } from '@weft/core';
import { probeAdapter } from './gpu-probe.js';

const { values: v } = parseArgs({ options: { backend: { type: 'string', default: 'vulkan' }, out: { type: 'string', default: 'bench-results/dawn-probe.json' } } });
if (v.backend !== 'vulkan' && v.backend !== 'opengl') throw new Error(`--backend must be vulkan or opengl, got '${v.backend}'`);
const log = (m: string) => process.stderr.write(`[dawn-probe] ${m}\n`);
// Not bundled: the npm package 'webgpu' beside the bundle (Dawn's prebuilt binary).
const name = 'webgpu';
const webgpu = (await import(name)) as { create: (o: string[]) => GPU; globals: Record<string, unknown> };
Object.assign(globalThis, webgpu.globals);
if (v.backend === 'opengl') prepareWebgpuEnvironment();

const result: Record<string, unknown> = { date: new Date().toISOString(), backend: v.backend };
for (const [label, toggles] of [['default', []], ['unsafe', ['enable-dawn-features=allow_unsafe_apis']]] as const) {
  const gpu = webgpu.create([`backend=${v.backend}`, ...toggles]);
  if (v.backend === 'opengl') {
    // Dawn's GL backend offers only a compatibility-mode adapter
    const request = gpu.requestAdapter.bind(gpu);
    gpu.requestAdapter = (o = {}) => request({ ...o, featureLevel: 'compatibility' } as GPURequestAdapterOptions);
  }
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  result[label] = (await gpu.requestAdapter()) ? await probeAdapter(log) : null;
  log(`${label}: ${JSON.stringify(result[label])}`);
}
mkdirSync(dirname(String(v.out)), { recursive: true });
writeFileSync(String(v.out), JSON.stringify(result, null, 1));
log(`wrote ${v.out}`);
setTimeout(() => process.exit(0), 100);
