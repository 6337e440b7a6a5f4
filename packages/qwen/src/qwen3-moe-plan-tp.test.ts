/**
 * Qwen3-MoE's plan on the host executor at tp 2 on real worker threads (runRanks, wasm): experts TP-split, or
 * with expert parallelism whole experts per rank (5 experts: 3 + 2) summed by the MoE block's one all-reduce;
 * rank 0's logits equal the tfjs forward of the same ranks and Hugging Face.
 */
import { fileURLToPath } from 'node:url';
import { runRanks } from '@weft/comm';
import type { ParallelOptions, WeightFormat } from '@weft/core';
import { HOST_PARITY_BOUNDS as B } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import type { MoeRankCase } from './moe-plan-rank.entry.js';

const entry = new URL('./moe-plan-rank.entry.ts', import.meta.url);
const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const CASES: (MoeRankCase & { parallel: ParallelOptions })[] = [
  { parallel: { tp: 2 }, dir: fixture('qwen3-moe-tiny'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact },
  { parallel: { tp: 2, ep: true }, dir: fixture('qwen3-moe-tiny'), file: 'expected-q8_0-a8.json', format: { ...fp32, quantization: 'q8_0' }, hf: B.a8, tfjs: B.a8 },
  { parallel: { tp: 2, ep: true }, dir: fixture('qwen3-moe-5e-dense'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact, moeDispatch: 'alltoall' },
];

describe('Qwen3-MoE on the host executor at tp 2 (two worker-thread ranks)', () => {
  it.each(CASES)('$parallel $dir $file', async ({ parallel, ...c }) => {
    const [r0, r1] = (await runRanks({ parallel, entry, args: c, backend: 'wasm' })) as ({ failures: string[]; line: string } | null)[];
    expect(r1).toBeNull();
    console.log(`${JSON.stringify(parallel)}: ${r0!.line}`);
    expect(r0!.failures).toEqual([]);
  }, 120_000);
});
