/**
 * Which requests an executor that samples on its device (the WebGPU plan) can
 * sample there, and their parameters in its terms (`RowSampling`): every field
 * of sampler.ts's `sampleToken` except the logits processors (logit bias, min
 * tokens masking), which stay on the host with `returnLogits` (its row is read
 * back anyway). The results convert back to the engine's `Sampled`.
 */
import { DEVICE_MAX_LOGPROBS, type RowSampled, type RowSampling } from '@weft/layers';
import type { Sampled, TokenHistory } from './sampler.js';
import type { SamplingParams } from './sampling-params.js';

/** Can the device sampler draw this request's tokens? (Plain greedy needs no sampler at all: the executor's argmax.) */
export function deviceSamplable(p: SamplingParams): boolean {
  const masking = p.minTokens > 0 && p.allStopTokenIds.length > 0;
  return !p.returnLogits && p.logitBias.length === 0 && !masking && (p.logprobs ?? 0) <= DEVICE_MAX_LOGPROBS;
}

/**
 * `p` as one device row generating output token `counter`; `slot`: its history slot (penalties), with
 * `history` to write into it first.
 */
export function rowSampling(p: SamplingParams, counter: number, slot: number | null, history?: TokenHistory): RowSampling {
  // best_of ranks sequences by cumulative logprob: the sampled token's is needed even without logprobs.
  const logprobs = p.logprobs ?? (p.bestOf > p.n ? 0 : null);
  const row: RowSampling = {
    temperature: p.temperature, topK: p.topK, topP: p.topP, minP: p.minP, seed: p.seed, counter,
    repetitionPenalty: p.repetitionPenalty, presencePenalty: p.presencePenalty, frequencyPenalty: p.frequencyPenalty, slot, logprobs,
  };
  if (history) row.history = { prompt: history.prompt, output: history.output };
  return row;
}

/** A device row's result as `sampleToken` returns it. */
export function fromRowSampled(r: RowSampled): Sampled {
  return r.logprob === null ? { tokenId: r.tokenId } : { tokenId: r.tokenId, logprob: { tokenId: r.tokenId, logprob: r.logprob, top: r.top } };
}
