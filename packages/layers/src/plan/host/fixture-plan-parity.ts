/**
 * Test support: a model's device plan on an executor against its tfjs path
 * and against a fixture's Hugging Face logits, over one engine-like schedule
 * of the fixture's prompts together — a batched prefill of each prompt's
 * first half, a chunk of two more tokens each, then batched one-token decodes
 * to the end, every step sampling each sequence's last row. So every row
 * from the first half on is compared, produced by each kind of step.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParallelState } from '@weft/comm';
import { Checkpoint, type WeightFormat } from '@weft/core';
import type { CausalLMRank } from '../../engine/causal-lm.js';
import type { FixtureCase } from '../../parity.js';
import { runPlanAndTfjs, soloParallelState, type ParityStep } from '../../plan-parity.js';
import { QuantizationConfig } from '../../quantization/quantization-config.js';
import { loadWeights } from '../../weight-loading.js';
import type { DevicePlan } from '../builder.js';
import type { PlanExecutor } from '../executor.js';
import { HostPlanExecutor, type HostPlanExecutorOptions } from './host-executor.js';

export interface LogitsGap {
  maxAbs: number;
  relL2: number;
}

export interface FixturePlanParity {
  /** The plan's logits against the tfjs path's, on every sampled row. */
  planVsTfjs: LogitsGap;
  /** Against the fixture's Hugging Face logits at the same positions. */
  planVsHf: LogitsGap;
  tfjsVsHf: LogitsGap;
  /** Rows compared. */
  rows: number;
}

/** The schedule: step 0 the first ⌈P/2⌉ tokens of every prompt, step 1 two more each, then one a step. */
export function fixtureSchedule(cases: readonly FixtureCase[]): { steps: ParityStep[]; positions: { seqId: number; pos: number }[][] } {
  const done = cases.map(() => 0);
  const steps: ParityStep[] = [];
  const positions: { seqId: number; pos: number }[][] = [];
  for (let s = 0; done.some((d, i) => d < cases[i]!.input_ids.length); s++) {
    const step: ParityStep = [];
    const pos: { seqId: number; pos: number }[] = [];
    cases.forEach((c, i) => {
      const P = c.input_ids.length;
      const n = Math.min(P - done[i]!, s === 0 ? Math.ceil(P / 2) : s === 1 ? 2 : 1);
      if (n <= 0) return;
      step.push({ seqId: i, tokens: c.input_ids.slice(done[i], done[i]! + n) });
      done[i]! += n;
      pos.push({ seqId: i, pos: done[i]! - 1 });
    });
    steps.push(step);
    positions.push(pos);
  }
  return { steps, positions };
}

class Gap {
  private maxAbs = 0;
  private num = 0;
  private den = 0;

  add(got: ArrayLike<number>, want: ArrayLike<number>): void {
    for (let j = 0; j < want.length; j++) {
      const d = got[j]! - want[j]!;
      this.maxAbs = Math.max(this.maxAbs, Math.abs(d));
      this.num += d * d;
      this.den += want[j]! * want[j]!;
    }
  }

  get value(): LogitsGap {
    return { maxAbs: this.maxAbs, relL2: Math.sqrt(this.num / this.den) };
  }
}

/**
 * Runs the fixture schedule through `model`'s plan on `makeExecutor` and its tfjs forward. Every rank of the
 * model's groups calls it; the one that holds the logits (last stage, tp rank 0) gets the figures, others null.
 */
export async function fixturePlanParity(
  model: CausalLMRank & { recordPlan(): DevicePlan },
  cases: readonly FixtureCase[],
  makeExecutor: (plan: DevicePlan) => PlanExecutor | Promise<PlanExecutor>,
  blockSize = 4,
): Promise<FixturePlanParity | null> {
  const { steps, positions } = fixtureSchedule(cases);
  const run = await runPlanAndTfjs(model, makeExecutor, steps, blockSize);
  if (run.plan.some((l) => l === null) || run.tfjs.some((l) => l === null)) {
    if (run.plan.some((l) => l !== null) || run.tfjs.some((l) => l !== null)) throw new Error('plan and tfjs disagree on which rank holds the logits');
    return null;
  }
  const V = run.vocab;
  const pt = new Gap(), ph = new Gap(), th = new Gap();
  let rows = 0;
  positions.forEach((pos, s) => {
    const plan = run.plan[s]!, tfjs = run.tfjs[s]!;
    pos.forEach(({ seqId, pos: p }, i) => {
      const c = cases[seqId]!;
      const [, vocab] = c.logits_shape;
      if (vocab !== V) throw new Error(`fixture logits have ${vocab} columns, the model's vocabulary ${V}`);
      const hf = c.logits.slice(p * V, (p + 1) * V);
      const a = plan.subarray(i * V, (i + 1) * V), b = tfjs.subarray(i * V, (i + 1) * V);
      pt.add(a, b);
      ph.add(a, hf);
      th.add(b, hf);
      rows++;
    });
  });
  return { planVsTfjs: pt.value, planVsHf: ph.value, tfjsVsHf: th.value, rows };
}

export interface HostFixtureOptions {
  /** The fixture directory (config.json, model.safetensors, the expected files). */
  dir: string;
  /** Which expected file: expected.json, expected-q8_0-a8.json, … */
  file: string;
  format: WeightFormat;
  /** The model family's factory (its registration's createModel). */
  createModel(dir: string, state: ParallelState): CausalLMRank;
  executor?: HostPlanExecutorOptions;
  /** Another executor of the plan (the WebGPU one); default the host executor with `executor`. */
  makeExecutor?: (plan: DevicePlan) => PlanExecutor | Promise<PlanExecutor>;
  /** The rank's parallel state (a rank of runRanks); default a solo tp 1 rank. */
  state?: ParallelState;
}

/**
 * A fixture's checkpoint loaded into this rank in `format`, its plan on the host executor against its tfjs path
 * (the current tfjs backend, with whatever CPU kernels are registered) and the fixture's logits; null on the
 * ranks that do not hold the logits.
 */
export async function hostFixtureParity(o: HostFixtureOptions): Promise<FixturePlanParity | null> {
  const cases = (JSON.parse(readFileSync(join(o.dir, o.file), 'utf8')) as { cases: FixtureCase[] }).cases;
  const model = o.createModel(o.dir, o.state ?? soloParallelState());
  try {
    const ckpt = Checkpoint.open(o.dir);
    try {
      loadWeights({ params: model.parameters(), checkpoint: ckpt, stacked: model.stackedParams, ignore: (n) => model.ignoreTensor(n), quantization: new QuantizationConfig(o.format) });
    } finally {
      ckpt.close();
    }
    if (!model.recordPlan) throw new Error(`${o.dir}: the model records no device plan`);
    return await fixturePlanParity(model as CausalLMRank & { recordPlan(): DevicePlan }, cases, o.makeExecutor ?? ((plan) => new HostPlanExecutor(plan, o.executor)));
  } finally {
    model.dispose();
  }
}

export interface ParityBound {
  maxAbs?: number;
  relL2: number;
}

/** The bounds the host plan is held to: HF's fixture bound, the a8 files' rel-L2, and plan = tfjs to fp32 noise. */
export const HOST_PARITY_BOUNDS = {
  fixture: { maxAbs: 1e-3, relL2: 1e-4 },
  a8: { relL2: 1.5e-2 },
  exact: { maxAbs: 1e-4, relL2: 1e-5 },
} as const satisfies Record<string, ParityBound>;

/** What exceeds its bound (empty: none), and the figures in one line for the log. */
export function parityReport(r: FixturePlanParity, bounds: { hf: ParityBound; tfjs: ParityBound }): { failures: string[]; line: string } {
  const failures: string[] = [];
  const fmt = (g: LogitsGap) => `${g.maxAbs.toExponential(2)} / ${g.relL2.toExponential(2)}`;
  for (const [what, gap, b] of [['plan vs tfjs', r.planVsTfjs, bounds.tfjs], ['plan vs HF', r.planVsHf, bounds.hf]] as const) {
    if (b.maxAbs !== undefined && !(gap.maxAbs <= b.maxAbs)) failures.push(`${what}: max-abs ${gap.maxAbs} > ${b.maxAbs}`);
    if (!(gap.relL2 <= b.relL2)) failures.push(`${what}: rel-L2 ${gap.relL2} > ${b.relL2}`);
  }
  return { failures, line: `${r.rows} rows, max-abs / rel-L2: plan-tfjs ${fmt(r.planVsTfjs)}; plan-HF ${fmt(r.planVsHf)}; tfjs-HF ${fmt(r.tfjsVsHf)}` };
}

/** One fixture file's check: `hostFixtureParity` held to `hf` / `tfjs`; failures empty when within both; null off the logits rank. */
export async function hostFixtureCheck(
  dir: string,
  c: { file: string; format: WeightFormat; hf: ParityBound; tfjs: ParityBound },
  createModel: HostFixtureOptions['createModel'],
  executor: HostPlanExecutorOptions = {},
  state?: ParallelState,
): Promise<{ failures: string[]; line: string } | null> {
  const r = await hostFixtureParity({ dir, file: c.file, format: c.format, createModel, executor, state });
  if (!r) return null;
  const { failures, line } = parityReport(r, c);
  return { failures, line: `${dir.split('/').at(-1)} ${c.file} (${executor.isa ?? 'best isa'}): ${line}` };
}
