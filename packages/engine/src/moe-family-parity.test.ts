/**
 * Qwen3-MoE and Mixtral equal Hugging Face (logits within the fixtures'
 * bounds, greedy tokens where the margin allows, cached decode = full
 * forward) on every parity backend, at tp 1, tp 2, pp 2, tp 2 × pp 2, dp 2 × tp 2
 * (replicas independent, experts TP-split) and with
 * expert parallelism under both token exchanges: tp 2 → EP 2, dp 2 × tp 2 →
 * EP 4 with the replicas serving different prompts at once (test:full adds
 * tp 2 × pp 2 + EP 2 and dp 2 + EP 2).
 *
 * Fixtures: qwen3-moe-tiny and mixtral-tiny (shared); from
 * tools/make_moe_fixtures.py, mixtral-3e (3 experts: EP 2 holds 2 + 1, EP 4
 * leaves a rank without experts) and qwen3-moe-5e-dense (5 experts: EP 4 holds
 * 2 + 1 + 1 + 1; one KV head that tp 2 replicates, head_dim ≠ hidden/heads,
 * a dense layer among the sparse ones, top-3 without renormalisation, q/k/v/o
 * biases, tied head), mixtral-swa-tiny (Mistral's window of 8 on every
 * layer, shorter than the 19-token prompt), qwen3-moe-swa (use_sliding_window:
 * window 6 on every layer, as transformers 5.18 does for Qwen3-MoE).
 *
 * CI runs each layout on at least one fixture of each family (one engine
 * start per row); WEFT_FULL_MATRIX=1 (`npm run test:full -w @weft/engine`) runs every layout
 * on every fixture.
 */
import { fileURLToPath } from 'node:url';
import { loadFixtureCases, parityBackends } from '@weft/layers';
import { describe, expect, it } from 'vitest';
import { expectFixtureParity } from './fixture-parity.js';
import { LLM, type LLMOptions } from './llm.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

type Layout = LLMOptions & { name: string };
const L = {
  tp1: { name: 'tp1', tp: 1 },
  tp2: { name: 'tp2', tp: 2 },
  pp2: { name: 'pp2', pp: 2 },
  tp2pp2: { name: 'tp2 pp2', tp: 2, pp: 2 },
  dp2tp2: { name: 'dp2 tp2 (experts TP-split)', tp: 2, dp: 2 },
  ep2ag: { name: 'tp2 ep2 (allgather)', tp: 2, enableExpertParallel: true },
  ep2a2a: { name: 'tp2 ep2 (alltoall)', tp: 2, enableExpertParallel: true, moeDispatch: 'alltoall' },
  ep4ag: { name: 'dp2 tp2 ep4 (allgather)', tp: 2, dp: 2, enableExpertParallel: true },
  ep4a2a: { name: 'dp2 tp2 ep4 (alltoall)', tp: 2, dp: 2, enableExpertParallel: true, moeDispatch: 'alltoall' },
  pp2ep2: { name: 'tp2 pp2 ep2 (alltoall)', tp: 2, pp: 2, enableExpertParallel: true, moeDispatch: 'alltoall' },
  dp2ep2: { name: 'dp2 ep2 (allgather)', dp: 2, enableExpertParallel: true },
} satisfies Record<string, Layout>;

const FULL = process.env['WEFT_FULL_MATRIX'] === '1';
const CI: Record<string, Layout[]> = {
  'mixtral-tiny': [L.tp2pp2, L.ep4a2a],
  'mixtral-3e': [L.ep2ag, L.ep4ag, L.dp2tp2],
  'qwen3-moe-tiny': [L.tp1, L.ep2a2a],
  'qwen3-moe-5e-dense': [L.tp2pp2, L.ep4a2a],
  'mixtral-swa-tiny': [L.tp1, L.ep4ag],
  'qwen3-moe-swa': [L.tp2pp2],
};
const RUNS = Object.entries(CI).map(([fixture, layouts]) => ({ fixture, layouts: FULL ? Object.values(L) : layouts }));

describe('layouts that cannot work fail on the driver, before any rank starts, naming the numbers', () => {
  it.each([
    ['mixtral-tiny', { tp: 3 }, /num_attention_heads=8 is not divisible by tp=3/],
    // Heads, the one KV head (replicated) and the experts (48) split over 3; the dense layer's 160 does not.
    ['qwen3-moe-5e-dense', { tp: 3, dp: 2, enableExpertParallel: true }, /intermediate_size \(the dense MLP layers\)=160 is not divisible by tp=3/],
    ['mixtral-3e', { pp: 4 }, /pp=4 is more than num_hidden_layers=3/],
  ] as [string, LLMOptions, RegExp][])('%s %j', async (fixture, opts, msg) => {
    const err = await LLM.load(fixtureDir(fixture), opts).then(
      async (llm) => (await llm.close(), null),
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(msg);
    // A rank's failure would say which rank failed.
    expect(err?.message).not.toMatch(/rank \d/);
  });
});

describe.each(parityBackends())('on $backend', ({ backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    console.log(skip);
    return;
  }
  describe.each(RUNS)('$fixture matches Hugging Face', ({ fixture, layouts }) => {
    const dir = fixtureDir(fixture);
    const cases = loadFixtureCases(dir);

    it.each(layouts)('$name', async ({ name: _name, ...opts }) => {
      const llm = await LLM.load(dir, { ...opts, backend });
      try {
        // The strict loader took every checkpoint tensor (experts of other EP ranks are skipped, not unused).
        expect(llm.unusedTensors).toEqual([]);
        await expectFixtureParity(llm, cases);
      } finally {
        await llm.close();
      }
    });
  });
});
