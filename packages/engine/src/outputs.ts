/** What callers get back: per-prompt outputs, per-completion outputs, stream deltas; and how a prompt's n sequences are tracked. */
import type { RequestDelta, RequestOutputState } from './output-processor.js';
import type { FinishReason, Request } from './request.js';
import type { TokenLogprob } from './sampler.js';
import type { Scheduler } from './scheduler.js';

export interface CompletionOutput {
  /** Which of the `n` completions. */
  index: number;
  tokenIds: number[];
  text: string;
  finishReason: FinishReason;
  /** The stop string or stop token id (EOS included) that ended it; null when it ended at a length or was aborted (vLLM's `stop_reason`). */
  stopReason: string | number | null;
  logprobs?: TokenLogprob[];
  /** Sum of the generated tokens' logprobs; present with `logprobs` or `bestOf` > n (vLLM's `cumulative_logprob`). */
  cumulativeLogprob?: number;
  /** With `returnLogits`: the logits each generated token was sampled from. */
  logits?: Float32Array[];
}

export interface GenerateOutput extends Omit<CompletionOutput, 'index'> {
  /** Which prompt. */
  index: number;
  promptTokenIds: number[];
  /** Prompt tokens found in the prefix cache at the first scheduling (vLLM's `num_cached_tokens`). */
  numCachedTokens: number;
  /** With n > 1: every completion (the fields above are the first one's). */
  outputs?: CompletionOutput[];
}

export interface StreamEvent {
  /** Which of the `n` completions. */
  index: number;
  /** New text since this completion's previous event. */
  text: string;
  /** New token ids. */
  tokenIds: number[];
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | null;
  /** On the event that carries a finish reason: the stop string or stop token id, or null (as `CompletionOutput.stopReason`). */
  stopReason?: string | number | null;
  /** On the event that carries a finish reason: prompt tokens found in the prefix cache (vLLM's `num_cached_tokens`). */
  numCachedTokens?: number;
}

/** One caller's prompt: its bestOf (≥ n) sequences and where their output goes. */
export interface Parent {
  index: number;
  promptTokenIds: number[];
  /** Completions the caller gets: with bestOf > n, the n of highest cumulative logprob. */
  n: number;
  children: Child[];
  remaining: number;
  emit: (ev: StreamEvent) => void;
  done: () => void;
  fail: (e: Error) => void;
}

/** One of the bestOf sequences of a prompt. */
export interface Child {
  index: number;
  parent: Parent;
  req: Request;
  out: RequestOutputState;
  /** The scheduler (replica, virtual engine) that runs it. */
  scheduler: Scheduler;
}

export function eventOf(c: Child, d: RequestDelta): StreamEvent {
  const ev: StreamEvent = { index: c.index, text: d.text, tokenIds: d.tokenIds, finishReason: d.finishReason };
  if (d.logprobs) ev.logprobs = d.logprobs;
  if (d.finishReason !== null) {
    ev.stopReason = d.finishReason === 'stop' ? c.req.stopReason : null;
    ev.numCachedTokens = Math.max(0, c.req.numCachedTokens);
  }
  return ev;
}

function completionOf(c: Child, index: number): CompletionOutput {
  const finishReason = c.req.finishReason ?? 'abort';
  const o: CompletionOutput = {
    index,
    tokenIds: [...c.req.outputTokenIds],
    text: c.out.text,
    finishReason,
    stopReason: finishReason === 'stop' ? c.req.stopReason : null,
  };
  const p = c.req.params;
  if (p.logprobs !== null) o.logprobs = c.out.logprobs;
  if (p.logprobs !== null || p.bestOf > p.n) o.cumulativeLogprob = c.out.cumulativeLogprob;
  if (p.returnLogits) o.logits = c.out.logits;
  return o;
}

/** The caller's n completions: all of them, or with bestOf > n the n of highest cumulative logprob, best first (vLLM v0). */
function chosen(p: Parent): Child[] {
  if (p.children.length === p.n) return p.children;
  return [...p.children].sort((a, b) => b.out.cumulativeLogprob - a.out.cumulativeLogprob || a.index - b.index).slice(0, p.n);
}

export function outputOf(p: Parent): GenerateOutput {
  const outs = chosen(p).map((c, i) => completionOf(c, i));
  const { index: _i, ...first } = outs[0]!;
  const g: GenerateOutput = { index: p.index, promptTokenIds: p.promptTokenIds, numCachedTokens: Math.max(0, p.children[0]!.req.numCachedTokens), ...first };
  if (outs.length > 1) g.outputs = outs;
  return g;
}
