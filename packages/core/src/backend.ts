/**
 * Backend selection. This file registers tfjs backends when asked, so it is
 * listed in `sideEffects`. Order with no preference: tensorflow (tfjs-node-gpu
 * or tfjs-node, optional and never a hard dependency), wasm (the embedded
 * default), cpu. webgpu only when asked for.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from './errors.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu', 'webgpu'];

export interface BackendInfo {
  /** weft's name for it. */
  name: BackendName;
  /** tfjs's registered name (`tensorflow`, `wasm`, `cpu`, `webgpu`). */
  tfBackend: string;
  /** Why this one was chosen. */
  reason: string;
}

export interface InitBackendOptions {
  prefer?: BackendName;
  /** wasm: XNNPACK threads; 1 per rank in Node. */
  threads?: number;
}

type Probe = () => Promise<string | null>; // null = available, string = why not

const importOptional = (name: string) => import(/* @vite-ignore */ name);

const probes: Record<BackendName, Probe> = {
  async tensorflow() {
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      try {
        await importOptional(pkg);
        return null;
      } catch {
        /* try the next */
      }
    }
    return '@tensorflow/tfjs-node-gpu / @tensorflow/tfjs-node are not installed';
  },
  async wasm() {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
      return null;
    } catch (e) {
      return `@tensorflow/tfjs-backend-wasm failed to load: ${(e as Error).message}`;
    }
  },
  async cpu() {
    await import('@tensorflow/tfjs-backend-cpu');
    return null;
  },
  async webgpu() {
    const g = globalThis as { navigator?: { gpu?: unknown } };
    if (!g.navigator?.gpu) {
      try {
        const webgpu = (await importOptional('webgpu')) as {
          create: (opts: string[]) => unknown;
          globals: Record<string, unknown>;
        };
        Object.assign(globalThis, webgpu.globals);
        Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: webgpu.create([]) }, configurable: true, writable: true });
      } catch (e) {
        return `no navigator.gpu, and the npm package 'webgpu' (Dawn) could not be loaded: ${(e as Error).message}`;
      }
    }
    try {
      const gpu = (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<unknown> } } }).navigator.gpu;
      const adapter = await gpu.requestAdapter();
      if (!adapter) return 'WebGPU found no adapter (Vulkan loader libvulkan.so.1 and an NVIDIA/AMD/Intel ICD are needed)';
      await import('@tensorflow/tfjs-backend-webgpu');
      return null;
    } catch (e) {
      return `WebGPU setup failed: ${(e as Error).message}`;
    }
  },
};

const AUTO_ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** Pick, register and activate a backend; returns which one and why. */
export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  if (opts.prefer !== undefined) {
    if (!BACKEND_NAMES.includes(opts.prefer)) {
      throw new ConfigError(`unknown backend '${String(opts.prefer)}'; choose one of ${BACKEND_NAMES.join(', ')}`);
    }
    const why = await probes[opts.prefer]();
    if (why !== null) {
      const available = await availableBackends();
      throw new ConfigError(
        `backend '${opts.prefer}' is not available (${why}); available here: ${available.join(', ') || 'none'}`,
      );
    }
    return activate(opts.prefer, `asked for with prefer='${opts.prefer}'`, opts);
  }
  const skipped: string[] = [];
  for (const name of AUTO_ORDER) {
    const why = await probes[name]();
    if (why === null) {
      const reason = skipped.length ? `first available in order tensorflow > wasm > cpu (${skipped.join('; ')})` : 'first in order tensorflow > wasm > cpu';
      return activate(name, reason, opts);
    }
    skipped.push(`${name}: ${why}`);
  }
  throw new ConfigError(`no tfjs backend could be loaded: ${skipped.join('; ')}`);
}

/** Names of the backends that would load here (webgpu is probed too). */
export async function availableBackends(): Promise<BackendName[]> {
  const out: BackendName[] = [];
  for (const name of BACKEND_NAMES) if ((await probes[name]().catch(() => 'error')) === null) out.push(name);
  return out;
}

async function activate(name: BackendName, reason: string, opts: InitBackendOptions): Promise<BackendInfo> {
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setThreadsCount?.(opts.threads ?? 1);
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new ConfigError(`tfjs could not initialise the '${name}' backend`);
  await tf.ready();
  return { name, tfBackend: tf.getBackend(), reason };
}
