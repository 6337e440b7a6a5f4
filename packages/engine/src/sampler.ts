/**
 * Token sampling on the rank that holds the logits, one row per sequence:
 * penalties, temperature, min-p, top-k and top-p without sorting the whole
 * vocabulary (a heap keeps the best candidates only), then one uniform draw.
 * The draw comes from a counter-based generator keyed by (seed, index of the
 * generated token), so a seeded request gives the same tokens whatever else
 * is in its batch and at every TP/PP/DP layout.
 */
import type { SamplingParams } from './sampling-params.js';

/** What the sampler needs of a request's history (penalties only). */
export interface TokenHistory {
  /** Prompt tokens (repetition penalty applies to prompt and output, as vLLM). */
  prompt: ReadonlySet<number>;
  /** Output token → count. */
  output: ReadonlyMap<number, number>;
}

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
  /** 1 + how many tokens the row scores higher (vLLM's Logprob.rank); logprobsOf sets it, the device sampler does not. */
  rank?: number;
  top: { tokenId: number; logprob: number }[];
}

export interface Sampled {
  tokenId: number;
  logprob?: TokenLogprob;
}

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

/** splitmix-style hash of (seed, counter) → uniform [0, 1). */
export function uniform(seed: number, counter: number): number {
  let z = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(counter + 0x632be5ab, 0xc2b2ae35)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97) >>> 0;
  z = (z ^ (z >>> 15)) >>> 0;
  return z / 4294967296;
}

/**
 * Indices of the k largest values, largest first (ties: lower index first), in
 * O(V log k) with a min-heap of size k: no sort of the whole row.
 */
export function topKIndices(row: ArrayLike<number>, k: number, keep?: (i: number) => boolean): number[] {
  const n = row.length;
  k = Math.min(k, n);
  if (k <= 0) return [];
  const heap: number[] = [];
  // "a is worse than b": smaller value, or equal value and larger index.
  const worse = (a: number, b: number) => row[a]! < row[b]! || (row[a] === row[b] && a > b);
  const up = (i: number) => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!worse(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = 0; i < n; i++) {
    if (keep && !keep(i)) continue;
    if (heap.length < k) {
      heap.push(i);
      up(heap.length - 1);
    } else if (worse(heap[0]!, i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap.sort((a, b) => row[b]! - row[a]! || a - b);
}

/** vLLM's penalties, in place on a copy of the row: repetition over prompt and output, presence and frequency over output. */
export function applyPenalties(row: Float32Array, p: SamplingParams, hist: TokenHistory): void {
  if (p.repetitionPenalty !== 1) {
    const r = p.repetitionPenalty;
    const seen = new Set<number>(hist.prompt);
    for (const t of hist.output.keys()) seen.add(t);
    for (const t of seen) if (t < row.length) row[t] = row[t]! > 0 ? row[t]! / r : row[t]! * r;
  }
  if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
    for (const [t, c] of hist.output) if (t < row.length) row[t] = row[t]! - p.frequencyPenalty * c - p.presencePenalty;
  }
}

/** log softmax of `row` at the given ids (raw model logprobs, as vLLM returns by default). */
export function logprobsOf(row: ArrayLike<number>, sampled: number, numTop: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  const top = numTop > 0 ? topKIndices(row, numTop).map((t) => ({ tokenId: t, logprob: row[t]! - lse })) : [];
  let above = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! > row[sampled]!) above++;
  return { tokenId: sampled, logprob: row[sampled]! - lse, rank: above + 1, top };
}

/**
 * Pick the next token from one row of logits. `tokenIndex` is the index of the
 * token being generated (0 for the first), the generator's counter.
 */
export function sampleToken(row: Float32Array, p: SamplingParams, tokenIndex: number, hist: TokenHistory | null = null): Sampled {
  const raw = row;
  let x = row;
  const penalties = hist !== null && (p.repetitionPenalty !== 1 || p.frequencyPenalty !== 0 || p.presencePenalty !== 0);
  const masking = tokenIndex < p.minTokens && p.allStopTokenIds.length > 0;
  if (penalties || masking || p.logitBias.length) {
    x = new Float32Array(row);
    // vLLM v1's order: logits processors (min tokens, logit bias), then penalties.
    applyLogitsProcessors(x, p, tokenIndex);
    if (penalties) applyPenalties(x, p, hist!);
  }
  const tokenId = p.temperature <= 1e-5 ? argmax(x) : sampleFiltered(x, p, tokenIndex);
  // best_of ranks sequences by cumulative logprob: the sampled token's is needed even when logprobs are not asked for.
  const wantLogprob = p.logprobs !== null || p.bestOf > p.n;
  return wantLogprob ? { tokenId, logprob: logprobsOf(raw, tokenId, p.logprobs ?? 0) } : { tokenId };
}

/** `minTokens`: stop and EOS tokens cannot be drawn before it; `logitBias`: added to the named logits. In place. */
export function applyLogitsProcessors(row: Float32Array, p: SamplingParams, tokenIndex: number): void {
  if (tokenIndex < p.minTokens) for (const t of p.allStopTokenIds) if (t < row.length) row[t] = -Infinity;
  for (const [t, b] of p.logitBias) if (t < row.length) row[t] = row[t]! + b;
}

/**
 * The tokens a random draw may pick and their unnormalised weights e^{(x - max)/T}, best first where a
 * filter ranked them: vLLM v1's order, temperature → min-p → top-k → top-p, top-p over the probabilities
 * renormalised to what min-p and top-k kept (the whole min-p set when there is no top-k).
 */
export function samplingCandidates(x: Float32Array, p: SamplingParams): { ids: number[]; weights: number[] } {
  const n = x.length;
  const invT = 1 / p.temperature;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i]! > max) max = x[i]!;
  // min-p: drop tokens below minP × the top probability (the top token's weight is 1).
  const floor = p.minP > 0 ? max + Math.log(p.minP) * p.temperature : -Infinity;
  const keep = p.minP > 0 ? (i: number) => x[i]! >= floor : undefined;
  const topK = p.topK > 0 && p.topK < n;
  // Without top-k, top-p's denominator is the mass of everything min-p keeps (read only then: O(vocab) exps).
  let total = 0;
  let ids: number[];
  if (topK) {
    ids = topKIndices(x, p.topK, keep);
  } else if (p.topP < 1) {
    for (let i = 0; i < n; i++) if (x[i]! >= floor) total += Math.exp((x[i]! - max) * invT);
    // The nucleus is usually small: take the best 64, 256, ... until their mass reaches topP.
    let k = 64;
    for (;;) {
      ids = topKIndices(x, k, keep);
      let mass = 0;
      for (const i of ids) mass += Math.exp((x[i]! - max) * invT);
      if (mass / total >= p.topP || ids.length >= n || k >= n) break;
      k *= 4;
    }
  } else {
    ids = [];
    for (let i = 0; i < n; i++) if (!keep || keep(i)) ids.push(i);
  }
  const weights = ids.map((i) => Math.exp((x[i]! - max) * invT));
  if (p.topP < 1) {
    // Candidates are best first here (they came from the heap).
    const sum = topK ? weights.reduce((a, v) => a + v, 0) : total;
    let acc = 0;
    for (let j = 0; j < weights.length; j++) {
      acc += weights[j]!;
      if (acc / sum >= p.topP) {
        ids.length = weights.length = j + 1;
        break;
      }
    }
  }
  return { ids, weights };
}

function sampleFiltered(x: Float32Array, p: SamplingParams, tokenIndex: number): number {
  const { ids, weights } = samplingCandidates(x, p);
  let mass = 0;
  for (const w of weights) mass += w;
  const u = uniform(p.seed, tokenIndex) * mass;
  let acc = 0;
  for (let j = 0; j < weights.length; j++) {
    acc += weights[j]!;
    if (u < acc) return ids[j]!;
  }
  return ids[ids.length - 1]!;
}
