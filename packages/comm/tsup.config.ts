import { defineConfig } from 'tsup';

// Every entry lands flat in dist/ (chunks too), which is how the launcher
// finds worker-main.js and the bench finds its rank entry from import.meta.url.
export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'worker-main': 'src/worker-main.ts',
    'comm-bench-entry': 'src/bench/comm-bench-entry.ts',
  },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
