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
  /** q4_0Tile16: the ISAs with tile16 kernels of their own (absent from builds before the layout). */
  info(): { isas: string[]; maxThreads: number; q4_0Tile16?: string[] };
  gemmQ8_0(isa: number, threads: number, x: Float32Array, m: number, k: number, qs: Int8Array, d: Uint16Array, n: number, out: Float32Array): void;
  gemmQ4_0(isa: number, threads: number, x: Float32Array, m: number, k: number, qs: Uint8Array, d: Uint16Array, n: number, out: Float32Array): void;
  gemmBf16(isa: number, threads: number, x: Float32Array, m: number, k: number, w: Uint16Array, n: number, out: Float32Array): void;
  /** gemmQ4_0 on a weight in the tile16 layout (src/q4-tile.ts); an ISA without tile kernels puts each tile back in rows. Absent from builds before it. */
  gemmQ4_0Tile16?(isa: number, threads: number, x: Float32Array, m: number, k: number, qs: Uint8Array, d: Uint16Array, n: number, out: Float32Array): void;
  /** The host plan ops (native/plan-ops.c documents each; src/plan-ops.ts wraps them). kind: 0 q8_0, 1 q4_0, 2 bf16, 3 fp32 [n, k], 4 fp32 [k, n],
   * 5 q4_0 tile16 (builds with gemmQ4_0Tile16). */
  linear(
    isa: number, threads: number, kind: number, m: number, k: number, n: number, x: Float32Array, xoff: number, ldx: number,
    w: Int8Array | Uint8Array | Uint16Array | Float32Array, wd: Uint16Array | null, out: Float32Array, ooff: number, ldo: number, accumulate: number, bias: Float32Array | null,
  ): void;
  rmsNorm(
    isa: number, x: Float32Array, xoff: number, ldx: number, out: Float32Array, ooff: number, ldo: number, res: Float32Array | null, roff: number, ldr: number,
    init: number, rows: number, width: number, group: number, w: Float32Array, eps: number,
  ): void;
  rotary(isa: number, x: Float32Array, xoff: number, ldx: number, rows: number, heads: number, headSize: number, rotaryDim: number, neox: number, cos: Float32Array, sin: Float32Array): void;
  gatedAct(isa: number, act: number, x: Float32Array, xoff: number, ldx: number, out: Float32Array, ooff: number, ldo: number, rows: number, half: number): void;
  add(isa: number, a: Float32Array, aoff: number, lda: number, b: Float32Array, boff: number, ldb: number, out: Float32Array, ooff: number, ldo: number, rows: number, width: number): void;
  softcap(isa: number, x: Float32Array, xoff: number, ldx: number, rows: number, width: number, cap: number): void;
  embed(isa: number, table: Float32Array | Uint16Array, fmt: number, rows: number, dim: number, ids: Int32Array, vocabStart: number, scale: number, out: Float32Array, ooff: number, ldo: number): void;
  attention(
    isa: number, threads: number, q: Float32Array, qoff: number, ldq: number, k: Float32Array, koff: number, ldk: number, v: Float32Array | null, voff: number, ldv: number,
    out: Float32Array, ooff: number, ldo: number, kCache: Float32Array, vCache: Float32Array | null, seqs: Int32Array, tables: Int32Array, dims: Int32Array, scale: number, softCap: number,
  ): void;
  /** `bytes` zeroed bytes, 2 MiB-aligned and advised MADV_HUGEPAGE on Linux when `hugePages` (native/host-memory.c);
   * the buffer's `hugePages` says whether madvise took. Absent from builds before it (src/host-memory.ts falls back). */
  hostBuffer?(bytes: number, hugePages: boolean): ArrayBuffer & { hugePages?: boolean };
}

export const ADDON_FILE = 'build/Release/weft_cpu_kernels.node';

let loaded: { addon: NativeAddon | null; reason: string } | undefined;

/** Where the addon is: WEFT_CPU_KERNELS_ADDON when set (a build made aside, for an A/B of two builds in situ),
 * else beside this module's package root (src/ and dist/ sit one level below it), or, when this module was bundled
 * into another package, in the installed @weft/cpu-kernels. */
function addonPath(): string {
  const aside = process.env.WEFT_CPU_KERNELS_ADDON;
  if (aside) return aside;
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
