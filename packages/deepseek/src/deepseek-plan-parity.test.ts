/**
 * DeepSeek's device plan run by the host executor against the tfjs forward of
 * the same loaded rank (tp 1): the V3 and V2-Lite fixtures, fp32 / q8_0 / q4_0
 * (the tfjs side on @weft/cpu-kernels' a8 gemms, as a tensorflow / wasm rank
 * runs them), the latent and the full MLA cache, over batched prefills,
 * batched decodes, a chunked prefill beside decodes, across block boundaries.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GroupCoordinator, SoloCommunicator, type ParallelState } from '@weft/comm';
import { cpuKernels } from '@weft/cpu-kernels';
import { Checkpoint, resolveParallelConfig } from '@weft/core';
import {
  compareLogits,
  HostPlanExecutor,
  loadWeights,
  promptRows,
  teacherForcedSteps,
  type FixtureCase,
  QuantizationConfig,
  registerQuantKernels,
  runPlanAndTfjs,
  unregisterQuantKernels,
  type ParityStep,
} from '@weft/layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registration } from './registration.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../fixtures/${name}`, import.meta.url));

function soloState(): ParallelState {
  const g = (kind: string) => new GroupCoordinator({ rank: 0, ranks: [0], uniqueName: `${kind}:0`, cpuGroup: new SoloCommunicator(`${kind}:0`) });
  return { rank: 0, worldSize: 1, config: resolveParallelConfig({}), world: g('world'), tp: g('tp'), pp: g('pp'), dp: g('dp'), ep: g('ep') };
}

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (seed * 97 + i * 31) % 500);

/** Two prefills together, batched decodes, a prompt in two chunks beside decodes; block size 4. */
const STEPS: ParityStep[] = [
  [{ seqId: 0, tokens: ids(7, 1) }, { seqId: 1, tokens: ids(5, 2) }],
  [{ seqId: 0, tokens: [11] }, { seqId: 1, tokens: [12] }],
  [{ seqId: 2, tokens: ids(6, 3) }, { seqId: 0, tokens: [13] }],
  [{ seqId: 1, tokens: [14] }, { seqId: 2, tokens: ids(3, 4) }, { seqId: 0, tokens: [15] }],
  [{ seqId: 2, tokens: [16] }, { seqId: 0, tokens: [17] }, { seqId: 1, tokens: [18] }],
];

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  const k = cpuKernels();
  registerQuantKernels(['cpu'], { activations: { q8_0: 'a8', q4_0: 'a8', bf16: 'exact' }, gemmQ8_0: k.gemmQ8_0, gemmQ4_0: k.gemmQ4_0, gemmBf16: k.gemmBf16 });
});
afterAll(() => unregisterQuantKernels(['cpu']));

type Format = 'fp32' | 'q8_0' | 'q4_0';

function load(name: string, format: Format, mlaKvCache: 'latent' | 'full') {
  const dir = fixture(name);
  const model = registration.createModel(dir, soloState(), { mlaKvCache });
  const ckpt = Checkpoint.open(dir);
  try {
    const { unused } = loadWeights({
      params: model.parameters(),
      checkpoint: ckpt,
      stacked: model.stackedParams,
      ignore: (n) => model.ignoreTensor(n),
      elsewhere: (n) => model.isElsewhere(n),
      quantization: format === 'fp32' ? undefined : new QuantizationConfig({ dtype: 'float32', quantization: format }),
    });
    expect(unused).toEqual([]);
  } finally {
    ckpt.close();
  }
  return model;
}

async function run(name: string, format: Format, cache: 'latent' | 'full', steps: ParityStep[]) {
  const model = load(name, format, cache);
  try {
    return await runPlanAndTfjs(model, (plan) => new HostPlanExecutor(plan), steps);
  } finally {
    model.dispose();
  }
}

/** The Hugging Face file each format is judged by (the host's q8_0 / q4_0 linears quantize activations: a8), and its bound. */
const HF_FILE: Record<Format, string> = { fp32: 'expected.json', q8_0: 'expected-q8_0-a8.json', q4_0: 'expected-q4_0-a8.json' };

const CASES: { name: string; format: Format; cache: 'latent' | 'full' }[] = [
  { name: 'deepseek-v3-tiny', format: 'fp32', cache: 'latent' },
  { name: 'deepseek-v3-tiny', format: 'q8_0', cache: 'latent' },
  { name: 'deepseek-v3-tiny', format: 'q4_0', cache: 'latent' },
  { name: 'deepseek-v3-tiny', format: 'fp32', cache: 'full' },
  { name: 'deepseek-v3-tiny', format: 'q8_0', cache: 'full' },
  { name: 'deepseek-v2-lite-tiny', format: 'fp32', cache: 'latent' },
  { name: 'deepseek-v2-lite-tiny', format: 'q4_0', cache: 'latent' },
];

/**
 * fp32: the same math in another order, max |Δ| ≤ 2e-4 on logits up to ~4. q8_0 / q4_0 run a8 (activations
 * rounded to Q8_0 blocks in every quantized linear) on both sides, where a last-bit difference upstream can move
 * one activation to the neighbouring quantum: the a8 fixtures' bound (rel-L2 ≤ 1.5e-2) applies, and the greedy
 * token must agree wherever the tfjs margin is ≥ 0.05.
 */
function expectClose(got: Float32Array, want: Float32Array, vocab: number, format: Format, what: string): { maxAbs: number; relL2: number } {
  const { maxAbs, relL2 } = compareLogits([got], want);
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expect(scale, `${what}: logits are not all ~0`).toBeGreaterThan(0.05);
  if (format === 'fp32') {
    expect(maxAbs, `${what}: max |plan − tfjs| (logits up to ${scale.toFixed(3)})`).toBeLessThan(2e-4);
  } else {
    expect(relL2, `${what}: rel-L2`).toBeLessThan(1.5e-2);
    for (let r = 0; r < want.length / vocab; r++) {
      const row = want.subarray(r * vocab, (r + 1) * vocab);
      const best = argmax(row);
      const second = Math.max(...row.filter((_, j) => j !== best));
      if (row[best]! - second >= 0.05) expect(argmax(got.subarray(r * vocab, (r + 1) * vocab)), `${what}: row ${r} greedy`).toBe(best);
    }
  }
  return { maxAbs, relL2 };
}

const argmax = (x: Float32Array) => x.reduce((b, v, j) => (v > x[b]! ? j : b), 0);

describe('DeepSeek plan on the host executor (tp 1)', () => {
  it.each(CASES)('$name $format, $cache cache: equals the tfjs forward over a mixed schedule', async ({ name, format, cache }) => {
    const r = await run(name, format, cache, STEPS);
    expect(r.plan.length).toBe(STEPS.length);
    let worst = { maxAbs: 0, relL2: 0 };
    r.plan.forEach((got, i) => {
      expect(got, `step ${i}`).not.toBeNull();
      expect(got!.length, `step ${i}`).toBe(STEPS[i]!.length * r.vocab);
      const e = expectClose(got!, r.tfjs[i]!, r.vocab, format, `step ${i}`);
      worst = { maxAbs: Math.max(worst.maxAbs, e.maxAbs), relL2: Math.max(worst.relL2, e.relL2) };
    });
    console.log(`${name} ${format} ${cache}: plan vs tfjs max |Δ| ${worst.maxAbs.toExponential(2)}, rel-L2 ${worst.relL2.toExponential(2)}`);
  }, 60_000);

  it.each(CASES.filter((c) => existsSync(join(fixture(c.name), HF_FILE[c.format]))))(
    '$name $format, $cache cache: equals Hugging Face (prefill with every row, then decodes)',
    async ({ name, format, cache }) => {
      const file = JSON.parse(readFileSync(join(fixture(name), HF_FILE[format]), 'utf8')) as { cases: FixtureCase[] };
      const prompts = file.cases.map((c) => c.input_ids);
      // The first prompt: 4 tokens prefilled, the rest decoded; the others prefilled whole.
      const steps = teacherForcedSteps(prompts, (i) => (i === 0 ? 4 : prompts[i]!.length));
      const r = await run(name, format, cache, steps);
      const rows = promptRows(steps, r.plan, r.vocab, prompts.length);
      file.cases.forEach((c, i) => {
        const { maxAbs, relL2 } = compareLogits(rows[i]!, c.logits);
        console.log(`${name} ${format} ${cache} vs HF ${HF_FILE[format]} case ${i}: max |Δ| ${maxAbs.toExponential(2)}, rel-L2 ${relL2.toExponential(2)}`);
        if (format === 'fp32') {
          expect(maxAbs, `case ${i}`).toBeLessThanOrEqual(1e-3);
          expect(relL2, `case ${i}`).toBeLessThanOrEqual(1e-4);
        } else {
          expect(relL2, `case ${i}`).toBeLessThanOrEqual(1.5e-2);
        }
      });
    },
    60_000,
  );
});
