/**
 * Backend selection. This file registers tfjs backends when asked, so it is
 * listed in `sideEffects`. Order with no preference: tensorflow (tfjs-node-gpu
 * or tfjs-node, optional and never a hard dependency), wasm (the embedded
 * default), cpu. webgpu only when asked for.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from './errors.js';
import { pinGpuDriverLibraries, vulkanLoaderPresent } from './pin-gpu-libraries.js';

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
  /**
   * Ranks that run as worker threads of this process (the thread launcher's world size). Above 1,
   * tensorflow needs an addon built by `npm run setup:tensorflow` (see `tensorflowInstalled().threadSafe`).
   */
  threadRanks?: number;
  /** webgpu switches, from the edge (`webgpuOptionsFromEnv(process.env)` in a rank's launcher): initBackend reads no WEFT_* variable itself. */
  webgpu?: WebgpuOptions;
}

/** How the webgpu backend starts (each rank's launcher reads them once, from `WEFT_WEBGPU_*`). */
export interface WebgpuOptions {
  /** Force Dawn's backend (default: Vulkan, then OpenGL on Mesa). */
  dawnBackend?: 'vulkan' | 'opengl';
  /** Dispatches per submit (tfjs's WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE; weft keeps tfjs's 15 by default). */
  submitBatch?: number;
  /** Keep the graphics loader libraries mapped with RTLD_NODELETE (default true; the exit-crash fix). */
  pinLibraries?: boolean;
  /**
   * Dawn toggles to enable on the instance (`enable-dawn-features=…`), e.g. `allow_unsafe_apis`, `skip_validation`,
   * `disable_robustness`: for measurements; Dawn allows one instance a process, so they apply to all of its work.
   */
  dawnFeatures?: string[];
}

/** `WEFT_WEBGPU_BACKEND`, `WEFT_WEBGPU_SUBMIT_BATCH`, `WEFT_WEBGPU_PIN_LIBS=0`, `WEFT_WEBGPU_DAWN_FEATURES`, checked: for the edge to read once and pass down. */
export function webgpuOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): WebgpuOptions {
  const o: WebgpuOptions = {};
  const forced = env.WEFT_WEBGPU_BACKEND;
  if (forced !== undefined) {
    if (forced !== 'vulkan' && forced !== 'opengl') throw new ConfigError(`WEFT_WEBGPU_BACKEND must be 'vulkan' or 'opengl', got '${forced}'`);
    o.dawnBackend = forced;
  }
  if (env.WEFT_WEBGPU_SUBMIT_BATCH !== undefined) {
    const batch = Number(env.WEFT_WEBGPU_SUBMIT_BATCH);
    if (!(Number.isInteger(batch) && batch > 0)) throw new ConfigError(`WEFT_WEBGPU_SUBMIT_BATCH must be a positive integer, got '${env.WEFT_WEBGPU_SUBMIT_BATCH}'`);
    o.submitBatch = batch;
  }
  if (env.WEFT_WEBGPU_PIN_LIBS === '0') o.pinLibraries = false;
  const features = env.WEFT_WEBGPU_DAWN_FEATURES;
  if (features !== undefined) {
    const list = features.split(',').map((f) => f.trim()).filter(Boolean);
    const bad = list.find((f) => !/^[a-z0-9_]+$/.test(f));
    if (bad !== undefined || !list.length) throw new ConfigError(`WEFT_WEBGPU_DAWN_FEATURES must be a comma-separated list of Dawn toggle names (e.g. allow_unsafe_apis,skip_validation), got '${features}'`);
    o.dawnFeatures = list;
  }
  return o;
}

type Probe = (opts: InitBackendOptions) => Promise<string | null>; // null = available, string = why not

const TENSORFLOW_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
const INSTALL_TENSORFLOW = "run 'npm run setup:tensorflow' in the weft repository (builds it on the tensorflow-cpu wheel), or 'npm i @tensorflow/tfjs-node'";
/**
 * scripts/setup-tensorflow.sh compiles this string into the addon it builds, with the fix it names:
 * tfjs-node's addon inserts op-attribute names into one process-wide std::set with no lock, so two rank
 * threads running ops at once corrupt the heap (issue 17). Keep the two in step.
 */
const THREAD_SAFE_MARKER = 'weft-patch:attr-name-set-mutex';

/** glibc's RTLD_NODELETE (node's os.constants.dlopen leaves it out), RTLD_NOW and RTLD_DEEPBIND. */
const RTLD_NODELETE = 0x1000;
const RTLD_NOW = 0x2;
const RTLD_DEEPBIND = 0x8;
let tensorflowPinned = false;

/**
 * The exit crash of processes with tensorflow ranks in worker threads, at its cause: Node dlcloses a
 * worker's addons when the worker ends, which unmaps libtensorflow once the last rank lets go — while
 * TensorFlow's own threads and thread-specific-data destructors of the other threads still point into
 * it (SIGSEGV or SIGABRT at exit, every time when ranks fail during start-up, now and then after a
 * successful run). Loading TensorFlow's libraries once more with RTLD_NODELETE keeps them mapped for
 * the life of the process. Process-wide; call before the addon loads, from any thread.
 *
 * RTLD_DEEPBIND: libtensorflow_framework carries its own LLVM and exports its symbols. When Dawn's
 * OpenGL fallback started first, Mesa's llvmpipe had put libLLVM-15 in the global scope (its driver
 * loader opens with RTLD_GLOBAL); TensorFlow's LLVM static initializers then bound to LLVM 15's
 * globals (3,835 bindings, LD_DEBUG) and crashed in dlopen (SIGSEGV in
 * `_GLOBAL__sub_I_DebugInfoMetadata.cpp`): webgpu then tensorflow in one process. Deep binding makes
 * TensorFlow's libraries look up their own symbols first, whatever was loaded before them.
 */
function pinTensorflowLibraries(pkg: string): void {
  if (tensorflowPinned || process.platform !== 'linux') return;
  tensorflowPinned = true;
  const require = createRequire(import.meta.url);
  const lib = join(dirname(require.resolve(`${pkg}/package.json`)), 'deps', 'lib');
  if (!existsSync(lib)) return;
  for (const f of readdirSync(lib).filter((n) => /^libtensorflow.*\.so/.test(n))) {
    try {
      process.dlopen({ exports: {} }, join(lib, f), RTLD_NOW | RTLD_NODELETE | RTLD_DEEPBIND);
    } catch {
      // "did not self-register": a plain library, loaded and now kept (NODELETE); anything else: the addon's own load reports it.
    }
  }
}

/**
 * tfjs-node 4.22 calls `util.isNullOrUndefined` and `util.isArray`, which Node 23 removed (DEP0051):
 * on Node 24 every tensorflow rank failed at its first op. Give them back, as they were, before it loads.
 */
function restoreRemovedUtil(): void {
  const util = createRequire(import.meta.url)('node:util') as Record<string, unknown>;
  // Assigned even where they still exist (deprecated, 22 and 24): the same functions, without a warning on stderr.
  util.isNullOrUndefined = (v: unknown) => v === null || v === undefined;
  util.isArray = Array.isArray;
}

/**
 * Without loading anything: which tfjs-node package is installed with its native addon built, or why
 * none is. Tests use it to decide whether the tensorflow suites run (they print SKIPPED otherwise).
 * `threadSafe`: the addon is one `npm run setup:tensorflow` built, safe with several rank threads in one
 * process. `from`: where to resolve the packages from (default: this module).
 */
export function tensorflowInstalled(from: string | URL = import.meta.url): { pkg: string; threadSafe: boolean } | { missing: string } {
  const require = createRequire(from);
  const reasons: string[] = [];
  for (const pkg of TENSORFLOW_PACKAGES) {
    let root: string;
    try {
      root = dirname(require.resolve(`${pkg}/package.json`));
    } catch {
      continue;
    }
    const addon = join(root, 'lib', 'napi-v8', 'tfjs_binding.node');
    // threadSafe: several ranks may run ops at once in one process (an addon not built by setup:tensorflow corrupts the heap then).
    if (existsSync(addon)) return { pkg, threadSafe: readFileSync(addon).includes(THREAD_SAFE_MARKER) };
    reasons.push(`${pkg} is installed but its addon (lib/napi-v8/tfjs_binding.node) was never built`);
  }
  return { missing: `${reasons.length ? reasons.join('; ') : '@tensorflow/tfjs-node is not installed'}: ${INSTALL_TENSORFLOW}` };
}

const importOptional = (name: string) => import(/* @vite-ignore */ name);

const probes: Record<BackendName, Probe> = {
  async tensorflow(opts) {
    const found = tensorflowInstalled();
    if ('missing' in found) return found.missing;
    if (!found.threadSafe && (opts.threadRanks ?? 1) > 1) {
      return (
        `${found.pkg}'s addon is not safe with ${String(opts.threadRanks)} ranks as threads of one process (it shares an unlocked std::set ` +
        "between threads: heap corruption); run 'npm run setup:tensorflow' in the weft repository (builds it patched), or run the ranks as processes (--transport tcp)"
      );
    }
    pinTensorflowLibraries(found.pkg);
    restoreRemovedUtil();
    try {
      await importOptional(found.pkg);
      return null;
    } catch (e) {
      // One line, not the addon loader's stack: a missing symbol or library names itself in the first line.
      const first = String((e as Error).message).split('\n')[0];
      return `${found.pkg} failed to load (${first}): ${INSTALL_TENSORFLOW}`;
    }
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
  async webgpu(opts) {
    const g = globalThis as { navigator?: { gpu?: GpuLike } };
    let why: string | null = null;
    if (!g.navigator?.gpu) {
      why = await installDawn(opts.webgpu ?? {});
      if (why !== null) return why;
    }
    try {
      const adapter = await g.navigator!.gpu!.requestAdapter();
      if (!adapter) return `WebGPU (Dawn) found no adapter; it needs the Vulkan loader and a GPU driver's ICD: ${vulkanDiagnosis()}`;
      // By name at run time: bundled, its ESM build would need tfjs-backend-cpu's ESM tree beside it.
      await importOptional('@tensorflow/tfjs-backend-webgpu');
      return null;
    } catch (e) {
      return `WebGPU setup failed: ${(e as Error).message}`;
    }
  },
};

interface GpuLike {
  requestAdapter(opts?: Record<string, unknown>): Promise<{ info?: { description?: string; vendor?: string } } | null>;
}

/**
 * Mesa's EGL needs `EGL_PLATFORM=surfaceless` to start without a display (Dawn's
 * OpenGL fallback). Call it in the main thread before starting worker ranks: a
 * worker's `process.env` is its own copy and never reaches the C environment.
 */
export function prepareWebgpuEnvironment(): void {
  process.env.EGL_PLATFORM ??= 'surfaceless';
}

/** Which Dawn adapter webgpu runs on, for `BackendInfo.reason`. */
let dawnAdapter = '';

/**
 * Sets up `navigator.gpu` from the npm package `webgpu` (Dawn). Vulkan first (a
 * real GPU); when that finds no adapter, Dawn's OpenGL backend on Mesa's
 * software rasteriser (llvmpipe, EGL surfaceless) in WebGPU compatibility mode,
 * which is slow but runs every WGSL kernel on a CPU-only machine (tests, CI).
 * `webgpu.dawnBackend` (`WEFT_WEBGPU_BACKEND=vulkan|opengl` at the launcher) forces one.
 */
async function installDawn(opts: WebgpuOptions): Promise<string | null> {
  let webgpu: { create: (opts: string[]) => GpuLike; globals: Record<string, unknown> };
  try {
    webgpu = (await importOptional('webgpu')) as typeof webgpu;
  } catch (e) {
    return `no navigator.gpu, and the npm package 'webgpu' (Dawn) could not be loaded: ${(e as Error).message}`;
  }
  Object.assign(globalThis, webgpu.globals);
  // Dawn unloads the graphics loader when a rank's instance ends; other threads then crash at exit. Keep it mapped.
  if (opts.pinLibraries !== false) pinGpuDriverLibraries();
  const forced = opts.dawnBackend;
  const toggles = opts.dawnFeatures?.length ? [`enable-dawn-features=${opts.dawnFeatures.join(',')}`] : [];
  let gpu: GpuLike | null = null;
  if (forced === 'vulkan' || (forced !== 'opengl' && vulkanLoaderPresent())) {
    const vk = webgpu.create(['backend=vulkan', ...toggles]);
    const a = await vk.requestAdapter().catch(() => null);
    if (a || forced === 'vulkan') gpu = vk;
    if (a) dawnAdapter = `Vulkan: ${a.info?.vendor ?? ''} ${a.info?.description ?? ''}`.trim();
  }
  if (!gpu) {
    prepareWebgpuEnvironment();
    const gl = webgpu.create(['backend=opengl', ...toggles]);
    const a = await gl.requestAdapter({ featureLevel: 'compatibility' }).catch(() => null);
    if (a) {
      const request = gl.requestAdapter.bind(gl);
      gl.requestAdapter = (opts = {}) => request({ ...opts, featureLevel: 'compatibility' });
      gpu = gl;
      dawnAdapter = `OpenGL (compatibility mode): ${a.info?.description ?? ''}`.trim();
    } else {
      gpu = webgpu.create(toggles);
    }
  }
  const nav = (globalThis as { navigator?: object }).navigator ?? {};
  Object.defineProperty(globalThis, 'navigator', { value: { ...nav, gpu }, configurable: true, writable: true });
  return null;
}

/** What Dawn's Vulkan backend looks for on Linux, and what is there: the loader library and the driver ICD manifests. */
function vulkanDiagnosis(): string {
  if (process.platform !== 'linux') return `see the WebGPU requirements for ${process.platform}`;
  const libDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/local/lib'];
  const loader = libDirs.map((d) => join(d, 'libvulkan.so.1')).find((f) => existsSync(f));
  const envFiles = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/local/nvidia/share/vulkan/icd.d'];
  const icds = envFiles
    ? envFiles.split(':').map((f) => `${f}${existsSync(f) ? '' : ' (missing)'}`)
    : icdDirs.flatMap((d) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.json')).map((f) => join(d, f)) : []));
  return [
    `loader libvulkan.so.1: ${loader ?? `not found in ${libDirs.join(', ')} (install libvulkan1)`}`,
    `driver ICDs${envFiles ? ' from VK_DRIVER_FILES' : ''}: ${icds.length ? icds.join(', ') : `none in ${icdDirs.join(', ')} (NVIDIA: the driver's nvidia_icd.json; point VK_DRIVER_FILES at it)`}`,
    "CPU-only Vulkan (lavapipe) lacks features Dawn needs; Dawn's OpenGL fallback needs Mesa's EGL (libegl-mesa0, libgl1-mesa-dri)",
  ].join('; ');
}

/** tfjs-backend-webgpu's MatMulProgramType.MatMulPackedProgram. */
const WEBGPU_MATMUL_PACKED = 3;

const AUTO_ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** Pick, register and activate a backend; returns which one and why. */
export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  if (opts.prefer !== undefined) {
    if (!BACKEND_NAMES.includes(opts.prefer)) {
      throw new ConfigError(`unknown backend '${String(opts.prefer)}'; choose one of ${BACKEND_NAMES.join(', ')}`);
    }
    const why = await probes[opts.prefer](opts);
    if (why !== null) {
      const available = await availableBackends({ threadRanks: opts.threadRanks });
      throw new ConfigError(
        `backend '${opts.prefer}' is not available (${why}); available here: ${available.join(', ') || 'none'}`,
      );
    }
    return activate(opts.prefer, `asked for with prefer='${opts.prefer}'`, opts);
  }
  const skipped: string[] = [];
  for (const name of AUTO_ORDER) {
    const why = await probes[name](opts);
    if (why === null) {
      const reason = skipped.length ? `first available in order tensorflow > wasm > cpu (${skipped.join('; ')})` : 'first in order tensorflow > wasm > cpu';
      return activate(name, reason, opts);
    }
    skipped.push(`${name}: ${why}`);
  }
  throw new ConfigError(`no tfjs backend could be loaded: ${skipped.join('; ')}`);
}

/** Names of the backends that would load here (webgpu is probed too), for a rank sharing its process with `threadRanks` − 1 others. */
export async function availableBackends(opts: Pick<InitBackendOptions, 'threadRanks'> = {}): Promise<BackendName[]> {
  const out: BackendName[] = [];
  for (const name of BACKEND_NAMES) if ((await probes[name](opts).catch(() => 'error')) === null) out.push(name);
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
  // tfjs's cpu backend prints "install our node backend" on its first tensor in Node: here it was chosen.
  const backend = tf.backend() as { firstUse?: boolean };
  if (name === 'cpu' && 'firstUse' in backend) backend.firstUse = false;
  if (name === 'webgpu') {
    // tfjs picks split-K / small-tile programs for decode-shaped (1-row) products; on the H200 its
    // packed 32×32 program ran a decode step's matmuls 2.5× faster (docs/benchmarks/gpu.md).
    tf.env().set('WEBGPU_MATMUL_PROGRAM_TYPE', WEBGPU_MATMUL_PACKED);
    // tfjs submits every 15 dispatches. On the H200 that beat 64 at batch-1 decode (51 vs 33 tok/s,
    // docs/benchmarks/gpu.md): an early submit lets the GPU start while the CPU records the rest.
    // webgpu.submitBatch (WEFT_WEBGPU_SUBMIT_BATCH at the launcher) overrides.
    const batch = opts.webgpu?.submitBatch;
    if (batch !== undefined) {
      if (!(Number.isInteger(batch) && batch > 0)) throw new ConfigError(`webgpu.submitBatch must be a positive integer, got ${batch}`);
      tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batch);
    }
  }
  return { name, tfBackend: tf.getBackend(), reason: name === 'webgpu' && dawnAdapter ? `${reason}; Dawn on ${dawnAdapter}` : reason };
}
