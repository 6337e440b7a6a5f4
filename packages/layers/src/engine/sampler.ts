/**
 * Token sampling on the host, over one row of logits. Seeded sampling draws
 * from a counter-based generator keyed by (seed, position), so the same seed
 * gives the same tokens at every TP/PP/DP layout and batch composition.
 */

export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus: keep the smallest set of tokens whose probability reaches topP (1 = off). */
  topP: number;
  /** Keep the topK most likely tokens (0 or ≥ vocab = off). */
  topK: number;
  seed: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topP: 1, topK: 0, seed: 0 };

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/** splitmix32-style hash of (seed, counter) → uniform [0, 1). */
export function uniform(seed: number, counter: number): number {
  let z = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(counter + 0x632be5ab, 0xc2b2ae35)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97) >>> 0;
  z = (z ^ (z >>> 15)) >>> 0;
  return z / 4294967296;
}

/** Pick the next token from `row` (logits). `position` is the index of the token being sampled. */
export function sampleToken(row: ArrayLike<number>, p: SamplingParams, position: number): number {
  if (p.temperature <= 0) return argmax(row);
  const n = row.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
  const k = p.topK > 0 ? Math.min(p.topK, n) : n;
  const max = row[order[0]!]!;
  const probs: number[] = [];
  let sum = 0;
  for (let i = 0; i < k; i++) {
    const e = Math.exp((row[order[i]!]! - max) / p.temperature);
    probs.push(e);
    sum += e;
  }
  let keep = k;
  if (p.topP < 1) {
    let acc = 0;
    for (let i = 0; i < k; i++) {
      acc += probs[i]! / sum;
      if (acc >= p.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += probs[i]!;
  const u = uniform(p.seed, position) * kept;
  let acc = 0;
  for (let i = 0; i < keep; i++) {
    acc += probs[i]!;
    if (u < acc) return order[i]!;
  }
  return order[keep - 1]!;
}
