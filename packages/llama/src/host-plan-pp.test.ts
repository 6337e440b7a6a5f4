/**
 * The host executor at pp 2 on real worker threads: stage 0 (embedding and the first layers) and stage 1 (the
 * rest, final norm, LM head) each run their own plan, `{hidden_states, residual}` passing between them through
 * the pp group; stage 1's logits over a batched prefill, a chunk and batched decodes equal Hugging Face's.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runRanks } from '@weft/comm';
import { compareLogits, fixtureSchedule, HOST_PARITY_BOUNDS as B, type FixtureCase } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import type { PpCase } from './host-plan-pp.entry.js';

const entry = new URL('./host-plan-pp.entry.ts', import.meta.url);
const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

describe('host executor at pp 2 (two worker-thread ranks)', () => {
  it.each(['llama-tiny', 'llama-mqa-tied-llama3'])('%s: stage 1 logits equal Hugging Face', async (name) => {
    const cases = (JSON.parse(readFileSync(`${fixture(name)}/expected.json`, 'utf8')) as { cases: FixtureCase[] }).cases;
    const args: PpCase = { dir: fixture(name), cases, format: { dtype: 'float32', quantization: null } };
    const [r0, r1] = (await runRanks({ parallel: { pp: 2 }, entry, args, backend: 'wasm' })) as (number[][] | null)[];
    expect(r0).toBeNull();
    const { positions } = fixtureSchedule(cases);
    const V = cases[0]!.logits_shape[1];
    const got: number[][] = [];
    const want: number[] = [];
    positions.forEach((step, s) =>
      step.forEach(({ seqId, pos }, i) => {
        const width = r1![s]!.length / step.length; // the padded vocabulary (a multiple of 64); the first V columns are real
        got.push(r1![s]!.slice(i * width, i * width + V));
        want.push(...cases[seqId]!.logits.slice(pos * V, (pos + 1) * V));
      }),
    );
    const { maxAbs, relL2 } = compareLogits(got, want);
    console.log(`pp 2 ${name}: ${got.length} rows, plan-HF max-abs ${maxAbs.toExponential(2)}, rel-L2 ${relL2.toExponential(2)}`);
    expect(got.length).toBe(12);
    expect(maxAbs).toBeLessThanOrEqual(B.fixture.maxAbs);
    expect(relL2).toBeLessThanOrEqual(B.fixture.relL2);
  });
});
