import { defineConfig } from 'tsup';

export default defineConfig({
  // Rank entry modules are loaded by worker threads by URL: each must be its own file.
  entry: ['src/cli.ts', 'src/bench/llama.ts', 'src/bench/comm.ts', 'src/bench/comm-rank.ts', 'src/bench/moe.ts', 'src/bench/moe-rank.ts', 'src/bench/gpu.ts', 'src/bench/gpu-kernels.ts', 'src/bench/dawn-probe.ts', 'src/bench/gpu-sampling.ts', 'src/bench/gpu-step.ts', 'src/bench/gpu-check.ts', 'src/bench/gpu-deepseek.ts', 'src/bench/gpu-collectives.ts', 'src/bench/gpu-collectives-rank.ts', 'src/bench/serve.ts', 'src/bench/serving.ts', 'src/bench/cpu.ts', 'src/bench/kernels.ts', 'src/bench/decode-profile.ts', 'src/mlp-tp.ts', 'src/mlp-tp-rank.ts', 'src/llama-tp2.ts', 'src/llama-tp2-pp2-trace.ts'],
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
});
