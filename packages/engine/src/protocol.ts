/** Messages between the driver (main thread) and the ranks. JSON-safe (structured clone): no code is ever deserialised. */
import type { TokenLogprob } from './sampler.js';
import type { SamplingParams } from './sampling-params.js';
import type { TraceEvent } from '@weft/layers';

/** One sequence's share of a step (vLLM's scheduled request). */
export interface StepSeq {
  seqId: number;
  /** Tokens fed this step: a whole prompt, a chunk of one, or the last sampled token. */
  tokens: number[];
  /** Tokens already in the KV cache (prefix-cache hits included): the first new token's position. */
  contextLen: number;
  /** Blocks covering positions `0 .. contextLen + tokens.length − 1`. */
  blockTable: number[];
  /** Sample the next token (false for a non-final prompt chunk). */
  sample: boolean;
  /** Index of the token to sample among this request's outputs (the seeded generator's counter). */
  tokenIndex: number;
  /** First step since (re)start: the sampling rank sets up this sequence's state. */
  start?: {
    sampling: SamplingParams;
    /** For penalties only: the prompt and the outputs so far. */
    history?: { prompt: number[]; output: number[] };
  };
}

/**
 * `sample`: next token of each sequence that asks. `logits-all`: every position's logits, no cache (parity checks).
 * `prompt-logprobs`: no cache; each position's logprob of the token after it, with the step's `promptLogprobs.top`
 * best (vLLM's prompt_logprobs), reduced on the rank so that no `[tokens, vocab]` matrix crosses threads.
 */
export type StepMode = 'sample' | 'logits-all' | 'prompt-logprobs';

/** A `prompt-logprobs` step: how many best tokens each position lists, and how many rows of logits at a time. */
export interface PromptLogprobsRequest {
  top: number;
  chunkRows: number;
}

export type DriverMessage =
  /** Allocate this many blocks of every attention layer's paged KV cache. */
  | { type: 'init-kv'; numBlocks: number; blockSize: number }
  /** `replicas[d]`: what DP replica d runs (may be empty); `freed[d]`: its sequences to forget first. */
  | { type: 'step'; stepId: number; mode: StepMode; replicas: StepSeq[][]; freed: number[][]; promptLogprobs?: PromptLogprobsRequest }
  | { type: 'shutdown' };

export interface SampledToken {
  seqId: number;
  tokenId: number;
  logprob?: TokenLogprob;
  /** With `returnLogits`: the row it was sampled from. */
  logits?: Float32Array;
}

export type RankMessage =
  | { type: 'progress'; rank: number; loaded: number; total: number; name: string }
  | {
      type: 'ready';
      rank: number;
      unused: string[];
      /** Weights the quantization would take that this rank keeps unquantized, with why. */
      unquantized?: string[];
      weightBytes: number;
      backend: string;
      /** What the rank's step runs: `plan (host)`, `plan (webgpu)`, or `tfjs (<why not the plan>)`. */
      stepPath: string;
      /** Bytes of one KV block over every attention layer of this rank (0 on a rank with none). */
      kvBytesPerBlock: number;
      /** Each attention layer's sliding window on this rank (null: global attention); absent: unknown, nothing is freed. */
      slidingWindows?: Array<number | null>;
    }
  | { type: 'kv-ready'; rank: number; kvBytes: number }
  /** `numTensors`: live tensors on the answering rank after the step (leak checks). */
  | { type: 'result'; stepId: number; dpRank: number; numTensors: number; sampled?: SampledToken[]; logits?: { rows: number; cols: number; data: Float32Array }; promptLogprobs?: TokenLogprob[][] }
  | { type: 'trace'; rank: number; events: TraceEvent[] };

export type { TraceEvent } from '@weft/layers';
