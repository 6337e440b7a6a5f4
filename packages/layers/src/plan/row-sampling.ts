/**
 * What an executor that samples on its device (the WebGPU executor) takes per
 * sampled row and hands back: the request's sampling parameters in vLLM v1's
 * meaning (the engine's sampler.ts is the reference), the generator's
 * counter, and a slot for the sequence's token history (penalties) that the
 * device keeps between steps.
 */

/** Most top logprobs a device row returns (vLLM's max_logprobs default, as the engine's MAX_LOGPROBS). */
export const DEVICE_MAX_LOGPROBS = 20;
/** Most logits a device row's processors change (logit bias entries and masked stop tokens together). */
export const DEVICE_MAX_BIAS = 128;

export interface RowSampling {
  /** ≤ 1e-5: greedy (argmax after penalties). */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** 0 = off. */
  minP: number;
  /** u32 seed and the index of the generated token: `uniform(seed, counter)` draws. */
  seed: number;
  counter: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** The device history slot the penalties read (and the sampled token is counted into); null: no penalties. */
  slot: number | null;
  /** Write the slot's history first (the sequence's first device step): prompt token ids, output token → count. */
  history?: { prompt: Iterable<number>; output: Iterable<[number, number]> };
  /**
   * The logits processors' effect, before the penalties: (token id, addition) pairs, ids unique and below
   * the vocabulary, −Infinity masking a token (min tokens), at most DEVICE_MAX_BIAS.
   */
  bias: readonly (readonly [number, number])[];
  /** Return the sampled token's logprob (raw model logprobs) and this many top ones; null: none. */
  logprobs: number | null;
}

export interface RowSampled {
  tokenId: number;
  /** With `RowSampling.logprobs`: the sampled token's logprob and the top ones, best first (ties: lower id first). */
  logprob: number | null;
  top: { tokenId: number; logprob: number }[];
}
