/**
 * The MoE families' fixtures (DeepSeek V3 / V2-Lite / V3 16 experts top-4, Qwen3-MoE, Mixtral) on the WebGPU
 * executor — the moe op routed on the device, the experts' tiled GEMV / GEMM — at tp 1 and at tp 2 with
 * expert parallelism (each rank holds half the experts whole; the layer's all-reduce sums the parts), on
 * worker-thread ranks with a device each on one adapter: rank 0's plan equals its tfjs forward (cpu) and the
 * fixture's Hugging Face logits. Qwen3-MoE and Mixtral also with Q8_0 / Q4_0 weights (weight-only files).
 * Each family's registration is loaded by the rank entry from its module URL.
 */
import { fileURLToPath } from 'node:url';
import { runRanks } from '@weft/comm';
import type { ParallelOptions, WeightFormat } from '@weft/core';
import { describe, expect, it } from 'vitest';
import type { FixtureRankCase } from './fixture-rank.entry.js';
import { WEBGPU_PARITY_BOUNDS as B } from './webgpu-fixture-check.js';

const entry = new URL('./fixture-rank.entry.ts', import.meta.url);
const family = (name: string) => new URL(`../../../../${name}/src/registration.ts`, import.meta.url).href;
const fixture = (name: string) => fileURLToPath(new URL(`../../../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const q = (quantization: 'q8_0' | 'q4_0'): WeightFormat => ({ ...fp32, quantization });

type Case = FixtureRankCase & { parallel: ParallelOptions };
const at = (parallel: ParallelOptions, fam: string, dir: string, file = 'expected.json', format = fp32, options?: Record<string, unknown>): Case => ({
  parallel,
  dir: fixture(dir),
  file,
  format,
  hf: B.fixture,
  tfjs: B.tfjs,
  registration: family(fam),
  ...(options ? { options } : {}),
});
const latent = { mlaKvCache: 'latent' };
const CASES: Case[] = [
  at({ tp: 1 }, 'deepseek', 'deepseek-v3-tiny', undefined, undefined, latent),
  at({ tp: 1 }, 'deepseek', 'deepseek-v2-lite-tiny', undefined, undefined, latent),
  at({ tp: 1 }, 'deepseek', 'deepseek-v3-16e-top4', undefined, undefined, latent),
  at({ tp: 2, ep: true }, 'deepseek', 'deepseek-v3-tiny', undefined, undefined, latent),
  at({ tp: 2, ep: true }, 'deepseek', 'deepseek-v3-16e-top4', undefined, undefined, latent),
  at({ tp: 1 }, 'qwen', 'qwen3-moe-tiny'),
  at({ tp: 1 }, 'qwen', 'qwen3-moe-tiny', 'expected-q8_0.json', q('q8_0')),
  at({ tp: 1 }, 'qwen', 'qwen3-moe-tiny', 'expected-q4_0.json', q('q4_0')),
  at({ tp: 2, ep: true }, 'qwen', 'qwen3-moe-tiny'),
  at({ tp: 1 }, 'mixtral', 'mixtral-tiny'),
  at({ tp: 1 }, 'mixtral', 'mixtral-tiny', 'expected-q8_0.json', q('q8_0')),
  at({ tp: 1 }, 'mixtral', 'mixtral-tiny', 'expected-q4_0.json', q('q4_0')),
  at({ tp: 2, ep: true }, 'mixtral', 'mixtral-tiny'),
];

describe('MoE fixtures on the WebGPU executor (experts routed on the device), tp 1 and tp 2 EP', () => {
  it.each(CASES)('$dir $file $parallel', async ({ parallel, ...c }) => {
    const [r0, ...rest] = (await runRanks({ parallel, entry, args: c, backend: 'webgpu' })) as ({ failures: string[]; line: string } | null)[];
    expect(rest.every((r) => r === null)).toBe(true);
    console.log(`${JSON.stringify(parallel)}: ${r0!.line}`);
    expect(r0!.failures).toEqual([]);
  });
});
