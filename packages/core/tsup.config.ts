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
  // Optional backends are loaded by name at run time, never bundled.
  external: ['@tensorflow/tfjs-backend-webgpu', 'webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
});
