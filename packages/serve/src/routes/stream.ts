/**
 * The one streaming loop of both generation routes: Server-Sent Events of
 * chunks, each choice's content deltas, then (as OpenAI and llama.cpp send
 * it) a chunk of its own with an empty delta carrying `finish_reason` and
 * vLLM's `stop_reason`, usage at the end (or in every chunk with
 * `continuous_usage_stats`), then `data: [DONE]`. The routes say only how a
 * choice's delta looks.
 */
import type { FastifyReply } from 'fastify';
import type { ServeContext } from '../context.js';
import type { ChoiceDelta } from '../generation.js';
import { SseWriter } from '../sse.js';
import { streamError, usage } from './shared.js';

export interface StreamShape {
  object: 'text_completion' | 'chat.completion.chunk';
  /** Chunks' choice entries sent before any delta (chat: each choice's role). */
  opening?: (choice: number) => Record<string, unknown>;
  /** A delta's entry, or null when it has nothing to send. `first`: this choice's first delta. */
  content(d: ChoiceDelta, first: boolean): Record<string, unknown> | null;
  /** The empty entry that carries a finish reason. */
  closing(choice: number): Record<string, unknown>;
  /** Fields added to the first chunk only (chat: prompt_token_ids). */
  firstChunkExtra?: Record<string, unknown>;
}

export interface StreamRequest {
  id: string;
  created: number;
  choices: number;
  promptTokens: number;
  includeUsage: boolean;
  continuousUsage: boolean;
}

export async function streamChoices(reply: FastifyReply, ctx: ServeContext, deltas: AsyncGenerator<ChoiceDelta>, req: StreamRequest, shape: StreamShape): Promise<void> {
  // Wait for the first delta before sending headers: a request the engine refuses still gets its status.
  let next = await deltas.next();
  const sse = new SseWriter(reply.raw, ctx.limits.writeTimeoutMs);
  reply.hijack();
  sse.start();
  let completionTokens = 0;
  let cachedTokens: number | undefined;
  let extra = shape.firstChunkExtra ?? {};
  const usageNow = () => usage(req.promptTokens, completionTokens, cachedTokens);
  const send = (entries: Record<string, unknown>[]) => {
    const chunk = {
      id: req.id,
      object: shape.object,
      created: req.created,
      model: ctx.model,
      system_fingerprint: ctx.systemFingerprint,
      choices: entries,
      ...(req.includeUsage || req.continuousUsage ? { usage: req.continuousUsage ? usageNow() : null } : {}),
      ...extra,
    };
    extra = {};
    return sse.send(chunk);
  };
  try {
    if (shape.opening) for (let c = 0; c < req.choices; c++) await send([shape.opening(c)]);
    const started = new Set<number>();
    while (!next.done && !sse.closed) {
      const d = next.value;
      completionTokens += d.tokenIds.length;
      if (d.cachedTokens !== undefined) cachedTokens = (cachedTokens ?? 0) + d.cachedTokens;
      const entry = shape.content(d, !started.has(d.choice));
      started.add(d.choice);
      if (entry) await send([{ ...entry, finish_reason: null, stop_reason: null }]);
      if (d.finishReason) await send([{ ...shape.closing(d.choice), finish_reason: d.finishReason, stop_reason: d.stopReason }]);
      next = await deltas.next();
    }
    if (!next.done) await deltas.return(undefined);
    if (req.includeUsage) await sse.send({ id: req.id, object: shape.object, created: req.created, model: ctx.model, system_fingerprint: ctx.systemFingerprint, choices: [], usage: usageNow() });
    sse.end();
  } catch (e) {
    await streamError(reply.raw, e, ctx.limits.writeTimeoutMs);
  }
}
