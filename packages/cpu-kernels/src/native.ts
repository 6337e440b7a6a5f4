/**
 * The native addon (native/*.c, built by `npm run setup:cpu-kernels` with node-gyp into
 * build/Release/weft_cpu_kernels.node). Absent or unloadable, the portable path runs and
 * `reason` says why.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions: `isa` indexes `info().isas`, `threads` ≥ 1 (the caller's thread is one of them). */
export interface NativeAddon {
  info(): { isas: string[]; maxThreads: number };
  gemmQ8_0(isa: number, threads: number, x: Float32Array, m: number, k: number, qs: Int8Array, d: Uint16Array, n: number, out: Float32Array): void;
  gemmQ4_0(isa: number, threads: number, x: Float32Array, m: number, k: number, qs: Uint8Array, d: Uint16Array, n: number, out: Float32Array): void;
  gemmBf16(isa: number, threads: number, x: Float32Array, m: number, k: number, w: Uint16Array, n: number, out: Float32Array): void;
}

export const ADDON_FILE = 'build/Release/weft_cpu_kernels.node';

let loaded: { addon: NativeAddon | null; reason: string } | undefined;

/** Where the addon is: beside this module's package root (src/ and dist/ sit one level below it), or, when this
 * module was bundled into another package, in the installed @weft/cpu-kernels. */
function addonPath(): string {
  const here = fileURLToPath(new URL(`../${ADDON_FILE}`, import.meta.url));
  if (existsSync(here)) return here;
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@weft/cpu-kernels/package.json')), ADDON_FILE);
  } catch {
    return here;
  }
}

/** The addon, loaded once. */
export function loadNative(): { addon: NativeAddon | null; reason: string } {
  if (loaded) return loaded;
  const path = addonPath();
  if (!existsSync(path)) {
    loaded = { addon: null, reason: `the native addon is not built (${path} is missing; run npm run setup:cpu-kernels)` };
  } else {
    try {
      loaded = { addon: createRequire(import.meta.url)(path) as NativeAddon, reason: `native addon ${path}` };
    } catch (e) {
      loaded = { addon: null, reason: `the native addon ${path} does not load: ${(e as Error).message.split('\n')[0]}` };
    }
  }
  return loaded;
}
