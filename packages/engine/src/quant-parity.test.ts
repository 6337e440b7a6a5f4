/**
 * Compressed weights equal Hugging Face on the same compressed weights
 * (fixtures' expected-q8_0.json / expected-q4_0.json: decoder linear weights
 * quantized to llama.cpp's blocks and dequantized, activations exact) at tp 1,
 * tp 2, pp 2, and for the MoE models (DeepSeek V3, Qwen3-MoE) with expert
 * parallelism and dp × tp; bf16 kept
 * as bf16 equals the bf16 fixture.
 * - cpuKernels false: every backend dequantizes per op → the weight-only files at the fixture bound;
 * - cpuKernels true (default): @weft/cpu-kernels quantizes activations to Q8_0 blocks → the a8 files
 *   (rel L2 ≤ 1.5e-2); its bf16 gemm is weight-only → the fixture bound.
 * Cached decode equals the full-sequence forward in both. CI runs one or two
 * layouts per suite (`ci`); WEFT_FULL_MATRIX=1 (`npm run test:full -w @weft/engine`) runs them all.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parityBackends, type FixtureCase } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import { expectFixtureParity, FIXTURE_BOUND, type ParityBound } from './fixture-parity.js';
import { LLM, type LLMOptions } from './llm.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));
const casesOf = (dir: string, file: string) => (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { cases: FixtureCase[] }).cases;
const A8_BOUND: ParityBound = { relL2: 1.5e-2 };

type Layout = LLMOptions & { name: string };
const DENSE: Layout[] = [
  { name: 'tp1', tp: 1 },
  { name: 'tp2', tp: 2 },
  { name: 'pp2', pp: 2 },
];
const MOE: Layout[] = [
  { name: 'tp1', tp: 1 },
  { name: 'tp2', tp: 2 },
  { name: 'tp2 ep', tp: 2, enableExpertParallel: true },
  { name: 'dp2 tp2 ep4', tp: 2, dp: 2, enableExpertParallel: true },
  { name: 'pp2', pp: 2 },
];
const A8: Layout[] = [
  { name: 'tp1', tp: 1 },
  { name: 'tp2', tp: 2 },
];
const MLA_A8: Layout[] = [
  { name: 'tp1', tp: 1 },
  { name: 'tp2 ep', tp: 2, enableExpertParallel: true },
  { name: 'tp1 full K/V cache', tp: 1, mlaKvCache: 'full' },
];

// llama-tiny's intermediate size is 344: down_proj stays unquantized (in the reference too), and is listed.
const LLAMA_SKIPPED = [0, 1, 2, 3].map((l) => `model.layers.${l}.mlp.down_proj.weight`);
interface Suite {
  fixture: string;
  file: string;
  opts: LLMOptions;
  layouts: Layout[];
  skipped: string[];
  bound: ParityBound;
  /** The layouts CI runs (by name). */
  ci: string[];
}
const FULL = process.env['WEFT_FULL_MATRIX'] === '1';
const exact = { cpuKernels: false };
const SUITES: Suite[] = [
  { fixture: 'llama-tiny', file: 'expected-q8_0.json', opts: { quantization: 'int8', ...exact }, layouts: DENSE, skipped: LLAMA_SKIPPED, bound: FIXTURE_BOUND, ci: ['tp2'] },
  { fixture: 'llama-tiny', file: 'expected-q4_0.json', opts: { quantization: 'int4', ...exact }, layouts: DENSE, skipped: LLAMA_SKIPPED, bound: FIXTURE_BOUND, ci: ['pp2'] },
  { fixture: 'llama-bf16', file: 'expected.json', opts: { dtype: 'bfloat16', ...exact }, layouts: DENSE, skipped: [], bound: FIXTURE_BOUND, ci: ['tp1'] },
  { fixture: 'deepseek-v3-tiny', file: 'expected-q8_0.json', opts: { quantization: 'int8', ...exact }, layouts: MOE, skipped: [], bound: FIXTURE_BOUND, ci: ['dp2 tp2 ep4'] },
  { fixture: 'deepseek-v3-tiny', file: 'expected-q4_0.json', opts: { quantization: 'int4', ...exact }, layouts: MOE, skipped: [], bound: FIXTURE_BOUND, ci: ['tp2 ep'] },
  { fixture: 'llama-tiny', file: 'expected-q8_0-a8.json', opts: { quantization: 'int8' }, layouts: A8, skipped: LLAMA_SKIPPED, bound: A8_BOUND, ci: ['tp2'] },
  { fixture: 'llama-tiny', file: 'expected-q4_0-a8.json', opts: { quantization: 'int4' }, layouts: A8, skipped: LLAMA_SKIPPED, bound: A8_BOUND, ci: ['tp1'] },
  { fixture: 'llama-tiny', file: 'expected-q4_0-a8.json', opts: { quantization: 'int4', cpuKernels: { threads: 2 } }, layouts: A8, skipped: LLAMA_SKIPPED, bound: A8_BOUND, ci: ['tp1'] },
  { fixture: 'llama-bf16', file: 'expected.json', opts: { dtype: 'bfloat16' }, layouts: A8, skipped: [], bound: FIXTURE_BOUND, ci: ['tp2'] },
  { fixture: 'qwen3-moe-tiny', file: 'expected-q8_0.json', opts: { quantization: 'int8', ...exact }, layouts: [MOE[0]!, MOE[2]!, MOE[3]!], skipped: [], bound: FIXTURE_BOUND, ci: ['tp2 ep'] },
  { fixture: 'qwen3-moe-tiny', file: 'expected-q4_0.json', opts: { quantization: 'int4', ...exact }, layouts: [MOE[1]!, MOE[4]!], skipped: [], bound: FIXTURE_BOUND, ci: ['pp2'] },
  { fixture: 'qwen3-moe-tiny', file: 'expected-q4_0-a8.json', opts: { quantization: 'int4' }, layouts: [MOE[0]!, MOE[2]!], skipped: [], bound: A8_BOUND, ci: ['tp1'] },
  { fixture: 'deepseek-v3-tiny', file: 'expected-q8_0-a8.json', opts: { quantization: 'int8' }, layouts: MLA_A8, skipped: [], bound: A8_BOUND, ci: ['tp1'] },
  { fixture: 'deepseek-v3-tiny', file: 'expected-q4_0-a8.json', opts: { quantization: 'int4' }, layouts: MLA_A8, skipped: [], bound: A8_BOUND, ci: ['tp2 ep'] },
];

// Packed weights on @weft/cpu-kernels (every suite but the `exact` ones) run the device plan's host executor,
// the same code on either CPU backend: CI runs those on wasm, and one on tensorflow (whose rank then starts
// without libtensorflow); the exact suites (tfjs path) run on both. WEFT_FULL_MATRIX=1 runs all on both.
const inCi = (s: Suite, backend: string) => backend !== 'tensorflow' || s.opts.cpuKernels === false || (s.fixture === 'llama-tiny' && s.file === 'expected-q8_0-a8.json');

// DeepSeek at tp 4: the routed and shared experts' down_proj take 64 / 4 = 16 inputs per rank, not a whole block.
it('a row-parallel shard that would cut a block stays unquantized, listed once with why', async () => {
  const llm = await LLM.load(fixtureDir('deepseek-v3-tiny'), { tp: 4, quantization: 'int4', backend: 'wasm' });
  try {
    const experts = [...Array.from({ length: 8 }, (_, e) => `experts.${e}`), 'shared_experts'];
    const want = [1, 2].flatMap((l) => experts.map((x) => `model.layers.${l}.mlp.${x}.down_proj.weight (input dim 16 on this rank is not a multiple of 32)`));
    expect([...llm.unquantizedWeights].sort()).toEqual(want.sort());
  } finally {
    await llm.close();
  }
});

describe.each(parityBackends().map((b) => [b.backend, b] as const))('on %s', (_b, { backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    console.log(skip);
    return;
  }
  describe.each(SUITES.filter((s) => FULL || inCi(s, backend)).map((s) => [`${s.fixture} ${s.file} ${JSON.stringify(s.opts)}`, s] as const))('%s', (_title, s) => {
    const dir = fixtureDir(s.fixture);
    const cases = casesOf(dir, s.file);

    it.each(s.layouts.filter((l) => FULL || s.ci.includes(l.name)).map((l) => [l.name, l] as const))('%s', async (name, { name: _name, ...layout }) => {
      const llm = await LLM.load(dir, { ...layout, ...s.opts, backend });
      try {
        expect(llm.unquantizedWeights.map((w) => w.split(' ')[0]).sort()).toEqual(s.skipped);
        const worst = await expectFixtureParity(llm, cases, s.bound, 4);
        console.log(
          `${backend} ${s.fixture} ${s.file} ${JSON.stringify(s.opts)} ${name}: max |Δ| ${worst.maxAbs.toExponential(2)}, rel L2 ${worst.relL2.toExponential(2)}, ` +
            `weight bytes/rank ${llm.weightBytesPerRank.join(',')}`,
        );
      } finally {
        await llm.close();
      }
    });
  });
});
