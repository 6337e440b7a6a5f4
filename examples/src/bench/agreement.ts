/**
 * Teacher-forced agreement of two engines' next-token distributions on the same token sequence (weft's
 * logits against llama.cpp's probabilities), in llama-perplexity's `--kl-divergence` terms: per step, whether
 * both engines' top-1 is the same token ("same top p"), each one's top-1 margin over its runner-up, and
 * KL(ref ‖ weft); plus the largest log-probability difference over the vocabulary. On random weights the
 * distributions are nearly flat (top-1 margins of 1e-6 in log p), so a top-1 that differs there is rounding
 * (different fp32 summation orders, activation quantization flips, llama.cpp's fp16 KV cache): the margins
 * at each differing step say so, and the KL divergence, compared with weft's own path-to-path divergence,
 * says whether the two engines compute the same function.
 */

/** log-softmax of a logits row (double precision sums). */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]!);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i]! - m);
  const lse = m + Math.log(z);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return out;
}

/** Index of the largest value and the gap to the second largest. */
export function top2(row: ArrayLike<number>): { top: number; margin: number } {
  let a = -1;
  let b = -1;
  for (let i = 0; i < row.length; i++) {
    if (a < 0 || row[i]! > row[a]!) {
      b = a;
      a = i;
    } else if (b < 0 || row[i]! > row[b]!) b = i;
  }
  return { top: a, margin: b < 0 ? Infinity : row[a]! - row[b]! };
}

export interface StepAgreement {
  step: number;
  /** Each engine's top-1 token. */
  weftTop: number;
  refTop: number;
  /** Each engine's top-1 − top-2 in log p. */
  weftMargin: number;
  refMargin: number;
  /** max over the vocabulary of |log p_weft − log p_ref| at this step. */
  maxAbsLogProbDiff: number;
  /** KL(ref ‖ weft) in nats. */
  kl: number;
}

export interface Agreement {
  steps: StepAgreement[];
  /** Steps where both engines' top-1 is the same token. */
  equal: number;
  meanKl: number;
  maxKl: number;
  maxAbsLogProbDiff: number;
  maxAbsProbDiff: number;
}

/**
 * Compare per step weft's log-probabilities (`weft[s]`, a logits or log-prob row) with the reference's
 * (`ref[s]`, log-probabilities; tokens the reference left out count as −∞ and are skipped).
 */
export function compareTeacherForced(weft: ArrayLike<number>[], ref: ArrayLike<number>[]): Agreement {
  if (weft.length !== ref.length) throw new Error(`agreement: ${weft.length} weft rows against ${ref.length} reference rows`);
  let maxAbsLogProbDiff = 0;
  let maxAbsProbDiff = 0;
  const steps = weft.map((row, step) => {
    const r = ref[step]!;
    if (row.length !== r.length) throw new Error(`agreement: step ${step} has ${row.length} weft columns against ${r.length} reference columns`);
    const lw = logSoftmax(row);
    let d = 0;
    let kl = 0;
    for (let i = 0; i < lw.length; i++) {
      if (!Number.isFinite(r[i]!)) continue;
      d = Math.max(d, Math.abs(lw[i]! - r[i]!));
      kl += Math.exp(r[i]!) * (r[i]! - lw[i]!);
      maxAbsProbDiff = Math.max(maxAbsProbDiff, Math.abs(Math.exp(lw[i]!) - Math.exp(r[i]!)));
    }
    maxAbsLogProbDiff = Math.max(maxAbsLogProbDiff, d);
    const w2 = top2(lw);
    const r2 = top2(r);
    return { step, weftTop: w2.top, refTop: r2.top, weftMargin: w2.margin, refMargin: r2.margin, maxAbsLogProbDiff: d, kl: Math.max(0, kl) };
  });
  return {
    steps,
    equal: steps.filter((s) => s.weftTop === s.refTop).length,
    meanKl: steps.reduce((t, s) => t + s.kl, 0) / Math.max(1, steps.length),
    maxKl: Math.max(0, ...steps.map((s) => s.kl)),
    maxAbsLogProbDiff,
    maxAbsProbDiff,
  };
}

/** One line: "top-1 equal 7/8 (step 3: top-1 margins weft 2.1e-6 / ref 8.0e-7), mean KL …, max |Δ log p| …". */
export function describeAgreement(a: Agreement): string {
  const e = (x: number) => x.toExponential(1);
  const differ = a.steps.filter((s) => s.weftTop !== s.refTop);
  const detail = differ.map((s) => `step ${s.step}: top-1 margins weft ${e(s.weftMargin)} / ref ${e(s.refMargin)}`).join('; ');
  const smallest = Math.min(...a.steps.map((s) => s.refMargin));
  return (
    `top-1 equal ${a.equal}/${a.steps.length}` +
    (differ.length ? ` (${detail})` : '') +
    `, mean KL ${e(a.meanKl)} (max ${e(a.maxKl)}), max |Δ log p| ${e(a.maxAbsLogProbDiff)}, max |Δ p| ${e(a.maxAbsProbDiff)}, smallest ref top-1 margin ${e(smallest)}`
  );
}
