import { defineConfig } from 'tsup';

export default defineConfig({
  // The rank entry is loaded by worker threads by URL: it must be its own file.
  entry: ['src/index.ts', 'src/rank-entry.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
