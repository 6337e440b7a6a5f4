/**
 * The exit crash of processes with webgpu ranks in worker threads (SIGSEGV after the results are
 * out), at its cause: Dawn `dlopen`s the graphics loader (libEGL for its OpenGL backend,
 * libvulkan and the driver's ICD for Vulkan) in each rank thread and `dlclose`s it when that
 * thread's instance is torn down. When the last rank lets go, the loader is unmapped — but
 * glvnd's libEGL (and driver libraries) registered pthread thread-specific-data destructors, and
 * every other thread that touched them (the other rank, Mesa/driver worker threads) runs those
 * destructors when it exits: a call into unmapped code (`__nptl_deallocate_tsd`, seen with gdb
 * on Mesa llvmpipe; LD_DEBUG=files shows libEGL.so.1 "destroying link map" before the crash).
 *
 * Loading those libraries once more with RTLD_NODELETE keeps them mapped for the life of the
 * process, so later dlcloses never unmap them. Process-wide: call it once, from any thread,
 * before the first rank starts Dawn (a no-op for libraries that are not there, and off Linux).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** glibc's RTLD_NODELETE (node's os.constants.dlopen leaves it out). */
const RTLD_NODELETE = 0x1000;
const RTLD_NOW = 0x2;

let pinned: string[] | null = null;

/** Pin the graphics loader libraries Dawn opens; returns the ones now kept loaded. */
export function pinGpuDriverLibraries(): string[] {
  if (pinned) return pinned;
  pinned = [];
  if (process.platform !== 'linux') return pinned;
  for (const lib of ['libEGL.so.1', 'libvulkan.so.1', ...icdLibraries()]) if (loads(lib, RTLD_NOW | RTLD_NODELETE)) pinned.push(lib);
  return pinned;
}

/** Whether the dynamic loader finds and loads `lib` (its search path: LD_LIBRARY_PATH, ld.so.cache, the defaults). */
function loads(lib: string, flags: number): boolean {
  try {
    process.dlopen({ exports: {} }, lib, flags);
    return true; // (never reached: a plain library does not register as an addon)
  } catch (e) {
    // "did not self-register" means it loaded; anything else: not there.
    return /self-register/.test((e as Error).message);
  }
}

/**
 * Whether Dawn's Vulkan backend can find the Vulkan loader here (off Linux: assumed so). Without it, asking Dawn for
 * a Vulkan adapter only prints "Couldn't load Vulkan" to stderr before the OpenGL fallback.
 */
export function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  return pinned?.includes('libvulkan.so.1') || loads('libvulkan.so.1', RTLD_NOW);
}

/** `library_path` of each Vulkan ICD manifest (VK_DRIVER_FILES / VK_ICD_FILENAMES, else the usual folders). */
function icdLibraries(): string[] {
  const env = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  const dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/local/nvidia/share/vulkan/icd.d'];
  const files = env ? env.split(':') : dirs.flatMap((d) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.json')).map((f) => join(d, f)) : []));
  const libs: string[] = [];
  for (const f of files) {
    try {
      const p = (JSON.parse(readFileSync(f, 'utf8')) as { ICD?: { library_path?: string } }).ICD?.library_path;
      // Software ICDs (lavapipe) are skipped: Dawn never keeps them, and loading LLVM for nothing is slow.
      if (p && !/lvp|swrast|lavapipe/.test(p)) libs.push(p);
    } catch {
      // unreadable manifest: the loader will ignore it too
    }
  }
  return libs;
}
