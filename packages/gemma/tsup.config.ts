import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  // ESM, and CommonJS for require() callers; shims give the CJS build import.meta.url (rank entries are found beside it).
  format: ['esm', 'cjs'],
  shims: true,
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
