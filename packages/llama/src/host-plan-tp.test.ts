/**
 * The host executor at tp 2 on real worker threads (runRanks, wasm): Llama fixtures sharded by the layers'
 * loaders, the row-parallel all-reduces and the vocab-parallel logits gather run as plan boundaries through
 * the ranks' groups; rank 0's logits equal the tfjs forward of the same ranks and Hugging Face.
 */
import { fileURLToPath } from 'node:url';
import { runRanks } from '@weft/comm';
import type { WeightFormat } from '@weft/core';
import { HOST_PARITY_BOUNDS as B } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import type { HostRankCase } from './host-plan-rank.entry.js';

const entry = new URL('./host-plan-rank.entry.ts', import.meta.url);
const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const CASES: HostRankCase[] = [
  { dir: fixture('llama-tiny'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { dir: fixture('llama-tiny'), file: 'expected-q8_0-a8.json', format: { ...fp32, quantization: 'q8_0' }, hf: B.a8, tfjs: B.a8 },
  { dir: fixture('llama-bf16'), file: 'expected.json', format: { ...fp32, dtype: 'bfloat16' }, hf: B.fixture, tfjs: B.exact },
  { dir: fixture('llama-mqa-tied-llama3'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
];

describe('host executor at tp 2 (two worker-thread ranks)', () => {
  it.each(CASES)('$dir $file', async (c) => {
    const [r0, r1] = (await runRanks({ parallel: { tp: 2 }, entry, args: c, backend: 'wasm' })) as ({ failures: string[]; line: string } | null)[];
    expect(r1).toBeNull();
    console.log(`tp 2: ${r0!.line}`);
    expect(r0!.failures).toEqual([]);
  });
});
