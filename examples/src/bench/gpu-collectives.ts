/**
 * bench:gpu's collective stage (issue 20; scripts/gpu/device.sh extra): the per-step cost of each collective
 * of the device plan on WebGPU at tp 2, two ranks (worker threads) on one GPU, each with its own device —
 * a boundary is GPU → host → the ranks' communicator → GPU. gpu-collectives-rank.ts times plans that differ
 * only in their boundaries; here: an all-reduce of `[T, width]` (K per step, the difference ÷ K) and the
 * vocab-parallel logits gather, at decode (T = S = 1, 16, 64) and prefill (T = 512, S = 1) shapes, and what
 * they add to a decode step of TinyLlama (2 all-reduces a layer × 22 + 1 gather) and DeepSeek-V2-Lite
 * (2 × 27 + 1).
 *
 * usage: node examples/dist/bench/gpu-collectives.js [--backend webgpu] [--width 2048] [--vocab 32000] [--k 8]
 *          [--reps 20] [--shapes 1x1,16x16,64x64,512x1] [--out bench-results/gpu-collectives.json]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { runRanks } from '@weft/comm';
import type { BackendName } from '@weft/core';
import type { CollectiveCase, CollectiveTiming } from './gpu-collectives-rank.js';

const { values: v } = parseArgs({
  options: {
    backend: { type: 'string', default: 'webgpu' },
    width: { type: 'string', default: '2048' },
    vocab: { type: 'string', default: '32000' },
    k: { type: 'string', default: '8' },
    reps: { type: 'string', default: '20' },
    shapes: { type: 'string', default: '1x1,16x16,64x64,512x1' },
    out: { type: 'string', default: 'bench-results/gpu-collectives.json' },
  },
});
const entry = new URL(`./gpu-collectives-rank${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
const shapes = String(v.shapes).split(',').map((x) => {
  const [T, S] = x.split('x').map(Number);
  if (!T || !S || T % S) throw new Error(`--shapes: ${x} is not TxS with S dividing T`);
  return { T, S };
});
const c: CollectiveCase = { width: Number(v.width), vocab: Number(v.vocab), shapes, k: Number(v.k), reps: Number(v.reps) };
const t0 = performance.now();
const results = (await runRanks({ parallel: { tp: 2 }, entry, args: c, backend: v.backend as BackendName, timeoutMs: 300_000 })) as (CollectiveTiming[] | null)[];
const timings = results[0]!;
const at = (plan: CollectiveTiming['plan'], T: number) => timings.find((t) => t.plan === plan && t.T === T)!.stepMs;
const rows = shapes.map(({ T, S }) => {
  const allReduceMs = (at('allReduce', T) - at('allReduce-free', T)) / c.k;
  const gatherMs = at('gatherColumns', T) - at('gather-free', T);
  return {
    T,
    S,
    allReduceMs: +allReduceMs.toFixed(4),
    allReduceBytesPerRank: T * c.width * 4,
    gatherMs: +gatherMs.toFixed(4),
    gatherBytesPerRank: S * (c.vocab / 2) * 4,
    // What the boundaries add to one step of each model at tp 2 (2 all-reduces a layer, 1 logits gather).
    tinyllamaStepMs: +(44 * allReduceMs + gatherMs).toFixed(3),
    deepseekV2LiteStepMs: +(54 * allReduceMs + gatherMs).toFixed(3),
  };
});
console.log(`\nWebGPU plan at tp 2 (two ranks on one GPU, ${v.backend}): per collective, ms (median of ${c.reps} steps; all-reduce: ${c.k} per step, difference ÷ ${c.k})\n`);
console.log('| rows (T tokens, S seqs) | all-reduce [T, 2048] ms | bytes/rank | logits gather [S, vocab] ms | bytes/rank | + TinyLlama step (44 + 1) ms | + V2-Lite step (54 + 1) ms |\n| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.T}, ${r.S} | ${r.allReduceMs} | ${r.allReduceBytesPerRank} | ${r.gatherMs} | ${r.gatherBytesPerRank} | ${r.tinyllamaStepMs} | ${r.deepseekV2LiteStepMs} |`);
mkdirSync(dirname(String(v.out)), { recursive: true });
writeFileSync(String(v.out), JSON.stringify({ date: new Date().toISOString(), backend: v.backend, case: c, timings, rows, wallS: +((performance.now() - t0) / 1000).toFixed(1) }, null, 1));
process.stderr.write(`[bench:gpu-collectives] wrote ${v.out}\n`);
process.exit(0);
