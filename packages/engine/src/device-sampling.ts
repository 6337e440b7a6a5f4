/**
 * Which requests an executor that samples on its device (the WebGPU plan) can
 * sample there, and their parameters in its terms (`RowSampling`): every field
 * of sampler.ts's `sampleToken`, the logits processors (logit bias, min-tokens
 * masking) as one list of additions per step. `returnLogits` stays on the host
 * (its row is read back anyway), as do more than DEVICE_MAX_BIAS additions. The
 * results convert back to the engine's `Sampled`.
 */
import { DEVICE_MAX_BIAS, DEVICE_MAX_LOGPROBS, type RowSampled, type RowSampling } from '@weft/layers';
import type { Sampled, TokenHistory } from './sampler.js';
import type { SamplingParams } from './sampling-params.js';

/** Can the device sampler draw this request's tokens? (Plain greedy needs no sampler at all: the executor's argmax.) */
export function deviceSamplable(p: SamplingParams): boolean {
  const additions = p.logitBias.length + (p.minTokens > 0 ? p.allStopTokenIds.length : 0);
  return !p.returnLogits && additions <= DEVICE_MAX_BIAS && (p.logprobs ?? 0) <= DEVICE_MAX_LOGPROBS;
}

/** sampler.ts's applyLogitsProcessors as additions for token `tokenIndex`: bias, −Infinity for masked stop tokens (masked wins). */
export function logitAdditions(p: SamplingParams, tokenIndex: number, vocabSize: number): [number, number][] {
  const add = new Map<number, number>();
  for (const [t, b] of p.logitBias) if (t < vocabSize) add.set(t, b);
  if (tokenIndex < p.minTokens) for (const t of p.allStopTokenIds) if (t < vocabSize) add.set(t, -Infinity);
  return [...add];
}

/**
 * `p` as one device row generating output token `counter` over a vocabulary of `vocabSize`; `slot`: its history
 * slot (penalties), with `history` to write into it first.
 */
export function rowSampling(p: SamplingParams, counter: number, vocabSize: number, slot: number | null, history?: TokenHistory): RowSampling {
  // best_of ranks sequences by cumulative logprob: the sampled token's is needed even without logprobs.
  const logprobs = p.logprobs ?? (p.bestOf > p.n ? 0 : null);
  const row: RowSampling = {
    temperature: p.temperature, topK: p.topK, topP: p.topP, minP: p.minP, seed: p.seed, counter,
    repetitionPenalty: p.repetitionPenalty, presencePenalty: p.presencePenalty, frequencyPenalty: p.frequencyPenalty, slot, logprobs,
    bias: logitAdditions(p, counter, vocabSize),
  };
  if (history) row.history = { prompt: history.prompt, output: history.output };
  return row;
}

/** A device row's result as `sampleToken` returns it. */
export function fromRowSampled(r: RowSampled): Sampled {
  return r.logprob === null ? { tokenId: r.tokenId } : { tokenId: r.tokenId, logprob: { tokenId: r.tokenId, logprob: r.logprob, top: r.top } };
}
