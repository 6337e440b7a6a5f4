/**
 * The WebGPU device sampler alone (issue 20): µs per call of `RowSampler.sample` (logits upload, the
 * kernel, the read-back of ids and logprobs) per vocabulary, rows and parameter mix, and the same call
 * with every row skipped (no kernel: the transfer's share), so the kernel's cost is their difference.
 *
 * usage: node examples/dist/bench/gpu-sampling.js [--vocab 32000,128256] [--rows 1,16,64] [--reps 20]
 *          [--out bench-results/gpu-sampling.json]
 */
/// <reference types="@webgpu/types" />
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '@weft/core';
import { requestDevice, RowSampler, type RowSampling } from '@weft/layers';
import { median } from './stats.js';

const { values: v } = parseArgs({
  options: {
    vocab: { type: 'string', default: '32000,128256' },
    rows: { type: 'string', default: '1,16,64' },
    reps: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench-results/gpu-sampling.json' },
  },
});

const base: RowSampling = {
  temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1, counter: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, slot: null, logprobs: null, bias: [],
};
const MIXES: Record<string, Partial<RowSampling>> = {
  'temperature (id-order draw)': {},
  'top-k 50 + top-p 0.9': { topK: 50, topP: 0.9 },
  'top-p 0.9 (whole vocabulary)': { topP: 0.9 },
  'min-p 0.05 + top-p 0.95': { minP: 0.05, topP: 0.95 },
  'penalties + top-k 40': { topK: 40, repetitionPenalty: 1.2, presencePenalty: 0.5, frequencyPenalty: 0.3 },
  'greedy + 20 logprobs': { temperature: 0, logprobs: 20 },
};

await initBackend({ prefer: 'webgpu' });
const device = await requestDevice('bench gpu-sampling');
const reps = Number(v.reps);
const results: { vocab: number; rows: number; mix: string; us: number; transferUs: number }[] = [];
for (const V of v.vocab!.split(',').map(Number)) {
  const maxRows = Math.max(...v.rows!.split(',').map(Number));
  const sampler = new RowSampler(device, V, maxRows, maxRows);
  // A peaked row, as a model's logits look: a few likely tokens (a small top-p nucleus) over a long tail.
  const row = new Float32Array(V);
  for (let i = 0; i < V; i++) row[i] = 2 * Math.sin(i * 12.9898) * Math.sin(i * 78.233);
  for (let k = 0; k < 8; k++) row[(k * 7919) % V] = 14 - k / 2;
  for (const S of v.rows!.split(',').map(Number)) {
    const logits = Array.from({ length: S }, () => row);
    const time = async (rows: (RowSampling | null)[]) => {
      await sampler.sample(logits, rows);
      const t: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        await sampler.sample(logits, rows);
        t.push((performance.now() - t0) * 1000);
      }
      return median(t);
    };
    const transferUs = await time(logits.map(() => null));
    for (const [mix, m] of Object.entries(MIXES)) {
      const us = await time(logits.map((_, i) => ({ ...base, ...m, seed: i, slot: m.repetitionPenalty ? i : null })));
      results.push({ vocab: V, rows: S, mix, us, transferUs });
      console.log(`V ${V} rows ${S} ${mix}: ${us.toFixed(0)} µs a call (${transferUs.toFixed(0)} µs without the kernel)`);
    }
  }
  sampler.destroy();
}
mkdirSync(dirname(v.out!), { recursive: true });
writeFileSync(v.out!, JSON.stringify({ adapter: 'see gpu-probe', reps, results }, null, 1));
device.destroy();
