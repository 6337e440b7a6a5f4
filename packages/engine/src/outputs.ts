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
  /** The stop string or stop token id that ended it. */
  stopReason?: string | number;
  logprobs?: TokenLogprob[];
  /** With `returnLogits`: the logits each generated token was sampled from. */
  logits?: Float32Array[];
}

export interface GenerateOutput extends Omit<CompletionOutput, 'index'> {
  /** Which prompt. */
  index: number;
  promptTokenIds: number[];
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
}

/** One caller's prompt: its n sequences and where their output goes. */
export interface Parent {
  index: number;
  promptTokenIds: number[];
  children: Child[];
  remaining: number;
  emit: (ev: StreamEvent) => void;
  done: () => void;
  fail: (e: Error) => void;
}

/** One of the n sequences of a prompt. */
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
  return ev;
}

function completionOf(c: Child): CompletionOutput {
  const o: CompletionOutput = { index: c.index, tokenIds: [...c.req.outputTokenIds], text: c.out.text, finishReason: c.req.finishReason ?? 'abort' };
  if (c.req.stopReason !== undefined) o.stopReason = c.req.stopReason;
  if (c.req.params.logprobs !== null) o.logprobs = c.out.logprobs;
  if (c.req.params.returnLogits) o.logits = c.out.logits;
  return o;
}

export function outputOf(p: Parent): GenerateOutput {
  const outs = p.children.map(completionOf);
  const { index: _i, ...first } = outs[0]!;
  const g: GenerateOutput = { index: p.index, promptTokenIds: p.promptTokenIds, ...first };
  if (outs.length > 1) g.outputs = outs;
  return g;
}
