/**
 * Runs the choices of one HTTP request (prompts × n) as engine streams under
 * one AbortSignal, merged into a single sequence of deltas, and records
 * their latencies. Every route, streaming or not, goes through here.
 */
import type { EngineClient, FinishReason, SamplingParamsInit, TokenLogprob } from './engine-client.js';
import type { ServerMetrics } from './metrics.js';

export interface ChoiceRequest {
  promptTokenIds: number[];
  params: SamplingParamsInit;
}

export interface ChoiceDelta {
  choice: number;
  text: string;
  tokenIds: number[];
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | null;
}

export interface ChoiceResult {
  text: string;
  tokenIds: number[];
  logprobs: TokenLogprob[];
  finishReason: FinishReason;
}

export async function* runChoices(llm: EngineClient, reqs: ChoiceRequest[], signal: AbortSignal, metrics: ServerMetrics, model: string): AsyncGenerator<ChoiceDelta> {
  const queue: ChoiceDelta[] = [];
  let failure: { error: unknown } | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  // A failing choice ends the others too.
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(signal.reason);
  signal.addEventListener('abort', onOuterAbort, { once: true });
  const labels = { model_name: model };
  let open = reqs.length;
  const hasText = llm.tokenizer !== null;
  const pumps = reqs.map(async (r, choice) => {
    const start = performance.now();
    let first = 0;
    let last = 0;
    let tokens = 0;
    let reason: FinishReason | null = null;
    try {
      for await (const ev of llm.stream(r.promptTokenIds, r.params, { signal: inner.signal })) {
        if (ev.tokenIds.length) {
          last = performance.now();
          if (!first) first = last;
          tokens += ev.tokenIds.length;
        }
        if (ev.finishReason) reason = ev.finishReason;
        // Without a tokenizer there is no text (vLLM's --skip-tokenizer-init): token ids only.
        queue.push({ choice, text: hasText ? ev.text : '', tokenIds: ev.tokenIds, logprobs: ev.logprobs, finishReason: ev.finishReason });
        notify();
      }
      if (!reason) {
        // An engine that ends a stream without a finish reason was aborted.
        reason = 'abort';
        queue.push({ choice, text: '', tokenIds: [], finishReason: 'abort' });
      }
    } catch (e) {
      if (inner.signal.aborted && !failure) reason = 'abort';
      else if (!failure) {
        failure = { error: e };
        inner.abort(e);
      }
    } finally {
      open--;
      if (reason) {
        metrics.finished.inc({ ...labels, finished_reason: reason });
        if (first) metrics.ttft.observe(labels, (first - start) / 1000);
        if (tokens > 1) metrics.tpot.observe(labels, (last - first) / 1000 / (tokens - 1));
        metrics.e2e.observe(labels, (performance.now() - start) / 1000);
      }
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
    // The consumer stopped early (client gone, error): stop every choice still running.
    signal.removeEventListener('abort', onOuterAbort);
    if (open > 0) inner.abort(signal.reason ?? new Error('request ended'));
    await Promise.allSettled(pumps);
  }
}

/** Drain runChoices into whole results, one per choice. */
export async function collectChoices(deltas: AsyncIterable<ChoiceDelta>, count: number): Promise<ChoiceResult[]> {
  const out: ChoiceResult[] = Array.from({ length: count }, () => ({ text: '', tokenIds: [], logprobs: [], finishReason: 'abort' as FinishReason }));
  for await (const d of deltas) {
    const c = out[d.choice]!;
    c.text += d.text;
    c.tokenIds.push(...d.tokenIds);
    if (d.logprobs) c.logprobs.push(...d.logprobs);
    if (d.finishReason) c.finishReason = d.finishReason;
  }
  return out;
}
