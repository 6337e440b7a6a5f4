/** Messages between the driver (main thread) and the ranks. JSON-safe: no code is ever deserialised. */
import type { SamplingParams } from './sampler.js';

export interface StepSequence {
  seqId: number;
  /** Tokens fed this step (the whole prompt at prefill, one token at decode). */
  tokens: number[];
  /** Tokens of this sequence already in the KV cache. */
  contextLen: number;
  sampling: SamplingParams;
}

/** `sample`: next token per sequence. `logits-all`: every position's logits, no cache (parity checks). */
export type StepMode = 'sample' | 'logits-all' | 'logits-last';

export type DriverMessage =
  /** `replicas[d]`: the sequences DP replica d runs this step (may be empty). */
  | { type: 'step'; stepId: number; mode: StepMode; replicas: StepSequence[][]; returnLogits?: boolean }
  | { type: 'free'; seqIds: number[] }
  | { type: 'shutdown' };

export type RankMessage =
  | { type: 'progress'; rank: number; loaded: number; total: number; name: string }
  | { type: 'ready'; rank: number; unused: string[]; weightBytes: number; backend: string }
  /** `numTensors`: live tensors on the answering rank after the step (leak checks). */
  | { type: 'result'; stepId: number; dpRank: number; numTensors: number; tokens?: number[]; logits?: { rows: number; cols: number; data: Float32Array } }
  | { type: 'trace'; rank: number; events: TraceEvent[] };

/** Chrome trace event ('X' = complete span). */
export interface TraceEvent {
  name: string;
  cat: string;
  ph: 'X';
  ts: number;
  dur: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}
