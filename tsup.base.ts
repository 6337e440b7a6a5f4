/**
 * What every @weft package's build shares: ESM, and CommonJS for require() callers (shims give the CJS
 * build import.meta.url: rank entries are found beside it), declarations, source maps, Node 20.
 * A package's tsup.config.ts passes only what differs (more entries, externals).
 */
import { defineConfig, type Options } from 'tsup';

export function libraryConfig(overrides: Options = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    shims: true,
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    ...overrides,
  });
}
