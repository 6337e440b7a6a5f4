import { defineConfig } from 'tsup';

export default defineConfig({
  // rank-entry is loaded by worker threads by URL, so it must be its own file in dist.
  entry: ['src/index.ts', 'src/rank-entry.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
