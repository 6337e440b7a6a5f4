import { defineConfig } from 'tsup';

export default defineConfig({
  // The rank entry is loaded by worker threads by URL: it must be its own file.
  entry: ['src/index.ts', 'src/rank-entry.ts'],
  // ESM, and CommonJS for require() callers; shims give the CJS build import.meta.url (rank entries are found beside it).
  format: ['esm', 'cjs'],
  shims: true,
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
