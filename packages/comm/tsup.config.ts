import { defineConfig } from 'tsup';

// Every entry lands flat in dist/ (chunks too), which is how the launcher
// finds worker-main.js from import.meta.url.
export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'worker-main': 'src/worker-main.ts',
  },
  // ESM, and CommonJS for require() callers; shims give the CJS build import.meta.url (rank entries are found beside it).
  format: ['esm', 'cjs'],
  shims: true,
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
