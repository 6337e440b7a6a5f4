/**
 * FusedMoE on real worker threads against the dense single-rank block: TP 1,
 * 2, 4 without expert parallelism; EP 2 and 4 (DP×TP ranks, with TP 2 inside
 * one of them) with both token exchanges, both placements, and replicas
 * holding different token counts, 0 included. Every rank loads through the
 * strict loader and must read only its own experts under EP.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { runRanks } from '@weft/comm';
import type { ParallelOptions } from '@weft/core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CaseResult } from './test-entries/fused-moe.js';
import { denseMoE, type MoECase } from './test-entries/reference.js';

const entry = new URL('./test-entries/fused-moe.ts', import.meta.url);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// V3: sigmoid + correction bias, grouped top-k, renormalised and scaled, one shared expert, routed by the gate.
const v3 = (tokens: number[], name = 'v3'): MoECase => ({
  name, H: 12, I: 8, E: 8, topK: 3, scoring: 'sigmoid', method: 'noaux_tc', nGroup: 4, topkGroup: 2,
  renormalize: true, scale: 2.5, bias: true, nShared: 1, useGate: true, tokens,
});
// V2: softmax greedy top-4 of 16, no renormalisation, two shared experts, logits passed in.
const v2 = (tokens: number[], name = 'v2'): MoECase => ({
  name, H: 12, I: 8, E: 16, topK: 4, scoring: 'softmax', method: 'greedy', renormalize: false, scale: 1,
  bias: false, nShared: 2, useGate: false, tokens,
});
// V2 group-limited: softmax, groups by max, scaled, no shared experts, fused gate|up checkpoint tensors.
const v2g = (tokens: number[], name = 'v2g'): MoECase => ({
  name, H: 12, I: 8, E: 16, topK: 2, scoring: 'softmax', method: 'group_limited_greedy', nGroup: 4, topkGroup: 2,
  renormalize: false, scale: 16, bias: false, nShared: 0, useGate: false, tokens, fusedCheckpoint: true,
});

// Mixtral / Qwen3-MoE (norm_topk_prob): softmax, plain top-2, renormalised, no shared experts; 3 experts, so EP 2
// holds 2 + 1 and EP 4 leaves a rank without any.
const sm = (tokens: number[], name = 'softmax-topk'): MoECase => ({
  name, H: 12, I: 8, E: 3, topK: 2, scoring: 'softmax', method: 'greedy', renormalize: true, bias: false, nShared: 0, useGate: true, tokens,
});

/** Each case under both exchanges (same name: both must give the same numbers). */
const bothDispatches = (cs: MoECase[]): MoECase[] => cs.flatMap((c) => [{ ...c, dispatch: 'allgather' as const }, { ...c, dispatch: 'alltoall' as const }]);

const runs: { what: string; parallel: ParallelOptions; cases: MoECase[] }[] = [
  { what: 'tp 1', parallel: { tp: 1 }, cases: [v3([5]), v2([7])] },
  { what: 'tp 2', parallel: { tp: 2 }, cases: [v3([5]), v2([7]), v2g([6]), { ...v3([5], 'v3-unreduced'), reduceResults: false }, sm([6])] },
  { what: 'tp 4', parallel: { tp: 4 }, cases: [v3([5]), v2([7]), v2g([1])] },
  {
    what: 'ep 2 (dp 2)',
    parallel: { dp: 2, ep: true },
    cases: bothDispatches([v3([5, 0]), { ...v2([3, 7]), placement: 'round_robin' }, v2g([6, 4]), sm([4, 5])]),
  },
  {
    what: 'ep 4 (dp 4)',
    parallel: { dp: 4, ep: true },
    cases: bothDispatches([v3([5, 0, 3, 9]), { ...v2([2, 6, 0, 1]), placement: 'round_robin' }, v2g([4, 4, 1, 7]), sm([3, 0, 6, 2])]),
  },
  {
    // TP peers split their shared tokens: one token over two peers leaves one with none.
    what: 'ep 4 (dp 2 × tp 2)',
    parallel: { tp: 2, dp: 2, ep: true },
    cases: bothDispatches([v3([4, 1]), v2([0, 5]), v2g([3, 3]), { ...v2([2, 3], 'v2-unreduced'), reduceResults: false }]),
  },
];

describe.each(runs)('FusedMoE at $what equals the dense MoE block', ({ parallel, cases }) => {
  it('every rank, every case', async () => {
    const tp = parallel.tp ?? 1;
    const dp = parallel.dp ?? 1;
    const ep = parallel.ep ? tp * dp : 1;
    const out = (await runRanks({ parallel, entry, args: cases, backend: 'wasm' })) as { results: CaseResult[]; leaked: number }[];
    expect(out.length).toBe(tp * dp);
    const want = new Map<string, Float32Array>();
    out.forEach(({ results, leaked }, rank) => {
      expect(leaked, `rank ${rank} leaked tensors`).toBe(0);
      const replica = Math.floor(rank / tp);
      results.forEach((r, i) => {
        const c = cases[i]!;
        const what = `${c.name} ${c.dispatch ?? ''} ${c.placement ?? ''} rank ${rank}`;
        expect(r.unused, what).toEqual([]);
        // Under EP a rank reads its own experts' tensors only (gate, up, down: 3 each; 2 when gate|up is fused).
        const perExpert = c.fusedCheckpoint ? 2 : 3;
        expect(r.localExperts.length, what).toBe(Math.floor(c.E / ep) + (rank % ep < c.E % ep ? 1 : 0));
        expect(r.expertReads, what).toBe(r.localExperts.length * perExpert);
        const key = `${c.name}/${replica}`;
        if (!want.has(key)) want.set(key, denseMoE(c, replica));
        const ref = want.get(key)!;
        expect(r.out.length, what).toBe(ref.length);
        const err = r.out.reduce((m, v, j) => Math.max(m, Math.abs(v - ref[j]!)), 0);
        expect(err, what).toBeLessThan(1e-4);
      });
      // Both exchanges give the same numbers for the same case. They are bit-identical here; in general the
      // cross-rank sums may round differently (reduce-scatter's order vs rank-ordered adds) when a token's
      // experts span three or more EP ranks, hence a tolerance far below the dense comparison's.
      results.forEach((r, i) => {
        const c = cases[i]!;
        if (c.dispatch !== 'alltoall') return;
        const other = results[cases.findIndex((o) => o.name === c.name && o.dispatch === 'allgather')]!.out;
        expect(r.out.length).toBe(other.length);
        const diff = r.out.reduce((m, v, j) => Math.max(m, Math.abs(v - other[j]!)), 0);
        expect(diff, `${c.name} rank ${rank}: all-to-all vs all-gather`).toBeLessThanOrEqual(1e-6);
      });
    });
  });
});
