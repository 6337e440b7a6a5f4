/**
 * Runs the prompts of one HTTP request as engine streams (each prompt one
 * engine request of `n` completions) under one AbortSignal, merged into a
 * single sequence of deltas numbered by choice (prompt-major:
 * `prompt × n + i`), and records their latencies. Every route, streaming or
 * not, goes through here. The engine streams are drained as fast as the
 * engine produces (a slow client never holds engine sequences); what the
 * client has not read yet waits here, bounded by the response-size check.
 */
import type { FinishReason, SamplingParamsInit, StreamEvent, TokenLogprob } from '@weft/engine';
import type { Admission } from './context.js';
import type { EngineClient } from './engine-client.js';
import type { ServerMetrics } from './metrics.js';

export interface PromptRequest {
  promptTokenIds: number[];
  /** With `n` (and `bestOf`): the engine runs the prompt's completions together. */
  params: SamplingParamsInit;
}

export interface ChoiceDelta {
  choice: number;
  text: string;
  tokenIds: number[];
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | null;
  /** The stop string or stop token id that ended it (vLLM's `stop_reason`). */
  stopReason: string | number | null;
  /** Prompt tokens found in the prefix cache, when the engine says (on a prompt's first choice only). */
  cachedTokens?: number;
}

export interface ChoiceResult {
  text: string;
  tokenIds: number[];
  logprobs: TokenLogprob[];
  finishReason: FinishReason;
  stopReason: string | number | null;
}

/** The engine's stop reason and prefix-cache count for one event (on the event that finishes a completion). */
function extras(ev: StreamEvent): { stopReason: string | number | null; cachedTokens?: number } {
  // A prompt's completions share its cached blocks: count them once, on completion 0.
  const cached = ev.index === 0 && ev.numCachedTokens !== undefined;
  return { stopReason: ev.stopReason ?? null, ...(cached ? { cachedTokens: ev.numCachedTokens } : {}) };
}

/** best_of > n: the engine knows the best only at the end, so the prompt runs whole (generate) and its outputs come as one event each. */
async function* wholeEvents(llm: EngineClient, r: PromptRequest, signal: AbortSignal): AsyncGenerator<StreamEvent> {
  const [g] = await llm.generate([r.promptTokenIds], r.params, { signal });
  const outs = g!.outputs ?? [{ ...g!, index: 0 }];
  for (const o of outs) {
    yield { index: o.index, text: o.text, tokenIds: o.tokenIds, logprobs: o.logprobs, finishReason: o.finishReason, stopReason: o.stopReason, ...(o.index === 0 ? { numCachedTokens: g!.numCachedTokens } : {}) };
  }
}

export async function* runChoices(llm: EngineClient, prompts: PromptRequest[], admission: Admission, metrics: ServerMetrics, model: string): AsyncGenerator<ChoiceDelta> {
  const { signal } = admission;
  const queue: ChoiceDelta[] = [];
  let failure: { error: unknown } | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  // A failing prompt ends the others too.
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(signal.reason);
  signal.addEventListener('abort', onOuterAbort, { once: true });
  const labels = { model_name: model };
  let open = prompts.length;
  const hasText = llm.tokenizer !== null;
  let firstChoice = 0;
  const pumps = prompts.map(async (r) => {
    const base = firstChoice;
    const n = r.params.n ?? 1;
    firstChoice += n;
    const start = performance.now();
    const first: number[] = [];
    const last: number[] = [];
    const tokens: number[] = [];
    const reasons: (FinishReason | null)[] = Array.from({ length: n }, () => null);
    try {
      const events = (r.params.bestOf ?? n) > n ? wholeEvents(llm, r, inner.signal) : llm.stream(r.promptTokenIds, r.params, { signal: inner.signal });
      for await (const ev of events) {
        const i = ev.index;
        if (ev.tokenIds.length) {
          last[i] = performance.now();
          first[i] ??= last[i];
          tokens[i] = (tokens[i] ?? 0) + ev.tokenIds.length;
        }
        if (ev.finishReason) reasons[i] = ev.finishReason;
        // Without a tokenizer there is no text (vLLM's --skip-tokenizer-init): token ids only.
        queue.push({ choice: base + i, text: hasText ? ev.text : '', tokenIds: ev.tokenIds, logprobs: ev.logprobs, finishReason: ev.finishReason, ...extras(ev) });
        notify();
      }
      // An engine that ends a stream without a finish reason was aborted.
      reasons.forEach((reason, i) => {
        if (reason) return;
        reasons[i] = 'abort';
        queue.push({ choice: base + i, text: '', tokenIds: [], finishReason: 'abort', stopReason: null });
      });
    } catch (e) {
      if (inner.signal.aborted && !failure) reasons.forEach((reason, i) => (reasons[i] = reason ?? 'abort'));
      else if (!failure) {
        failure = { error: e };
        inner.abort(e);
      }
    } finally {
      open--;
      admission.release(Math.max(n, r.params.bestOf ?? n));
      reasons.forEach((reason, i) => {
        if (!reason) return;
        metrics.finished.inc({ ...labels, finished_reason: reason });
        if (first[i] !== undefined) metrics.ttft.observe(labels, (first[i]! - start) / 1000);
        if ((tokens[i] ?? 0) > 1) metrics.tpot.observe(labels, (last[i]! - first[i]!) / 1000 / (tokens[i]! - 1));
        metrics.e2e.observe(labels, (performance.now() - start) / 1000);
      });
      notify();
    }
  });
  try {
    while (true) {
      if (failure) throw (failure as { error: unknown }).error;
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (open === 0) break;
      await new Promise<void>((r) => (wake = r));
    }
  } finally {
    // The consumer stopped early (client gone, error): stop every prompt still running.
    signal.removeEventListener('abort', onOuterAbort);
    if (open > 0) inner.abort(signal.reason ?? new Error('request ended'));
    await Promise.allSettled(pumps);
  }
}

/** Drain runChoices into whole results, one per choice. */
export async function collectChoices(deltas: AsyncIterable<ChoiceDelta>, count: number): Promise<{ results: ChoiceResult[]; cachedTokens: number }> {
  const out: ChoiceResult[] = Array.from({ length: count }, () => ({ text: '', tokenIds: [], logprobs: [], finishReason: 'abort' as FinishReason, stopReason: null }));
  let cachedTokens = 0;
  const seen = new Set<number>();
  for await (const d of deltas) {
    const c = out[d.choice]!;
    c.text += d.text;
    c.tokenIds.push(...d.tokenIds);
    if (d.logprobs) c.logprobs.push(...d.logprobs);
    if (d.finishReason) {
      c.finishReason = d.finishReason;
      c.stopReason = d.stopReason;
    }
    if (d.cachedTokens !== undefined && !seen.has(d.choice)) {
      seen.add(d.choice);
      cachedTokens += d.cachedTokens;
    }
  }
  return { results: out, cachedTokens };
}
