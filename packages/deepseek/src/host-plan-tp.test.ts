/**
 * DeepSeek's plan on the host executor at tp 2 on real worker threads (runRanks, wasm): MLA heads split over
 * the ranks, the routed experts TP-split (one all-reduce completes routed + shared) or, with expert
 * parallelism, whole experts per rank whose parts the same all-reduce sums; and EP across DP replicas (dp 2,
 * dp 2 × tp 2), where the MoE op exchanges the replicas' different tokens as a plan boundary. Each replica's
 * tp rank 0 equals the tfjs forward of the same ranks (which exchanges tokens under EP) and Hugging Face.
 */
import { fileURLToPath } from 'node:url';
import { runRanks } from '@weft/comm';
import type { ParallelOptions, WeightFormat } from '@weft/core';
import { HOST_PARITY_BOUNDS as B } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import type { DeepseekRankCase } from './host-plan-rank.entry.js';

const entry = new URL('./host-plan-rank.entry.ts', import.meta.url);
const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const fp32: WeightFormat = { dtype: 'float32', quantization: null };
const v3 = fixture('deepseek-v3-tiny');
const CASES: (DeepseekRankCase & { parallel: ParallelOptions })[] = [
  { parallel: { tp: 2 }, dir: v3, file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact, options: {} },
  { parallel: { tp: 2, ep: true }, dir: v3, file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact, options: {} },
  { parallel: { tp: 2, ep: true }, dir: v3, file: 'expected-q4_0-a8.json', format: { ...fp32, quantization: 'q4_0' }, hf: B.a8, tfjs: B.a8, options: { moeDispatch: 'alltoall' } },
  { parallel: { tp: 2 }, dir: v3, file: 'expected-q8_0-a8.json', format: { ...fp32, quantization: 'q8_0' }, hf: B.a8, tfjs: B.a8, options: { mlaKvCache: 'full' } },
  { parallel: { tp: 2, ep: true }, dir: fixture('deepseek-v2-lite-tiny'), file: 'expected.json', format: fp32, hf: B.fixture, tfjs: B.exact, options: {} },
];

describe('DeepSeek on the host executor at tp 2 and EP (worker-thread ranks)', () => {
  it.each(CASES)('$parallel $dir $file $options', async ({ parallel, ...c }) => {
    const [r0, r1] = (await runRanks({ parallel, entry, args: c, backend: 'wasm' })) as ({ failures: string[]; line: string } | null)[];
    expect(r1).toBeNull();
    console.log(`${JSON.stringify(parallel)}: ${r0!.line}`);
    expect(r0!.failures).toEqual([]);
  }, 120_000);

  it.each([
    { parallel: { dp: 2, ep: true }, dispatch: 'allgather' as const, format: fp32, file: 'expected.json', hf: B.fixture, tfjs: B.exact },
    { parallel: { dp: 2, ep: true }, dispatch: 'alltoall' as const, format: { ...fp32, quantization: 'q8_0' as const }, file: 'expected-q8_0-a8.json', hf: B.a8, tfjs: B.a8 },
    { parallel: { dp: 2, tp: 2, ep: true }, dispatch: 'allgather' as const, format: fp32, file: 'expected.json', hf: B.fixture, tfjs: B.exact },
  ])('EP across DP replicas $parallel $dispatch $file: the MoE token exchange as a plan boundary, replicas with different tokens', async ({ parallel, dispatch, ...rest }) => {
    const c: DeepseekRankCase = { dir: v3, ...rest, options: { moeDispatch: dispatch } };
    const out = (await runRanks({ parallel, entry, args: c, backend: 'wasm' })) as ({ failures: string[]; line: string; localExperts: number } | null)[];
    const reports = out.filter((r) => r !== null);
    expect(reports.length, 'one report per DP replica').toBe(2);
    const ep = (parallel.dp ?? 1) * (parallel.tp ?? 1);
    for (const r of reports) {
      console.log(`${JSON.stringify(parallel)} ${dispatch}: ${r.line}`);
      expect(r.localExperts, 'whole experts per EP rank').toBe(8 / ep);
      expect(r.failures).toEqual([]);
    }
  }, 120_000);
});
