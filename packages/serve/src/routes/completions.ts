/** POST /v1/completions: prompts as text, texts, token ids or lists of them; streaming or whole. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ServeContext } from '../context.js';
import { badRequest } from '../errors.js';
import { collectChoices, runChoices, type ChoiceRequest } from '../generation.js';
import { completionLogprobs } from '../logprobs.js';
import { asBody, choiceSeed, commonParams, MAX_LOGPROBS, optBool, optInt, tokenIdList, type Body } from '../params.js';
import { SseWriter } from '../sse.js';
import { checkLength, encodePrompt, streamError, usage } from './shared.js';

const MAX_PROMPTS = 256;

/** `prompt` in any of its four forms, as token-id lists. */
function readPrompts(ctx: ServeContext, b: Body): { ids: number[]; text: string | null }[] {
  const p = b.prompt;
  let list: (string | number[])[];
  if (typeof p === 'string') list = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) list = [p as number[]];
  else if (Array.isArray(p) && p.length > 0 && (p.every((x) => typeof x === 'string') || p.every((x) => Array.isArray(x)))) list = p as (string | number[])[];
  else if (p === undefined || p === null) throw badRequest('prompt is required', 'prompt');
  else if (Array.isArray(p) && p.length === 0) throw badRequest('prompt must not be empty', 'prompt');
  else throw badRequest('prompt must be a string, a list of strings, a list of token ids, or a list of lists of token ids', 'prompt');
  if (list.length > MAX_PROMPTS) throw badRequest(`at most ${MAX_PROMPTS} prompts per request, got ${list.length}`, 'prompt');
  return list.map((x) => (typeof x === 'string' ? { ids: encodePrompt(ctx, x, true), text: x } : { ids: tokenIdList(x, 'prompt', ctx.vocabSize), text: null }));
}

export function completionsRoute(app: FastifyInstance, ctx: ServeContext): void {
  app.post('/v1/completions', async (req, reply) => {
    const b = asBody(req.body);
    ctx.checkModel(b.model);
    const common = commonParams(b, ctx.defaults);
    const maxTokens = optInt(b, 'max_tokens', { min: 1 }) ?? 16;
    const logprobs = optInt(b, 'logprobs', { min: 0, max: MAX_LOGPROBS });
    const echo = optBool(b, 'echo') ?? false;
    if (echo && logprobs !== undefined) throw badRequest('echo together with logprobs (prompt logprobs) is not supported', 'echo');
    const prompts = readPrompts(ctx, b);
    for (const p of prompts) {
      if (p.ids.length === 0) throw badRequest('prompt must not be empty', 'prompt');
      checkLength(ctx, p.ids.length, maxTokens, 'max_tokens');
    }
    const n = common.n;
    const choices: ChoiceRequest[] = prompts.flatMap((p) =>
      Array.from({ length: n }, (_, i) => ({
        promptTokenIds: p.ids,
        params: { ...common.sampling, n: 1, maxTokens, seed: choiceSeed(common.seed, i), ...(logprobs !== undefined ? { logprobs } : {}) },
      })),
    );
    const echoText = (c: number) => {
      const p = prompts[Math.floor(c / n)]!;
      return echo ? (p.text ?? ctx.tokenizer?.decode(p.ids) ?? '') : '';
    };
    const admission = ctx.admit(reply, choices.length);
    const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const promptTokens = prompts.reduce((a, p) => a + p.ids.length, 0);
    const deltas = runChoices(ctx.llm, choices, admission.signal, ctx.metrics, ctx.model);
    try {
      if (!common.stream) {
        const results = await collectChoices(deltas, choices.length);
        const offsets = results.map((_, c) => echoText(c).length);
        return {
          id,
          object: 'text_completion',
          created,
          model: ctx.model,
          choices: results.map((r, c) => ({
            index: c,
            text: echoText(c) + r.text,
            logprobs: logprobs === undefined ? null : completionLogprobs(ctx.tokenizer, r.logprobs, offsets[c]!, logprobs),
            finish_reason: r.finishReason,
            stop_reason: null,
            ...(common.returnTokenIds ? { prompt_token_ids: choices[c]!.promptTokenIds, token_ids: r.tokenIds } : {}),
          })),
          usage: usage(promptTokens, results.reduce((a, r) => a + r.tokenIds.length, 0)),
        };
      }
      // Wait for the first delta before sending headers: a request the engine refuses still gets its status.
      const first = await deltas.next();
      const sse = new SseWriter(reply.raw);
      reply.hijack();
      sse.start();
      const textSoFar = choices.map(() => 0);
      const started = choices.map(() => false);
      let completionTokens = 0;
      const chunk = (choiceObj: Record<string, unknown>[]) => ({
        id,
        object: 'text_completion',
        created,
        model: ctx.model,
        choices: choiceObj,
        ...(common.includeUsage ? { usage: null } : {}),
      });
      let next = first;
      while (!next.done) {
        const d = next.value;
        completionTokens += d.tokenIds.length;
        const lead = started[d.choice] ? '' : echoText(d.choice);
        const firstOfChoice = !started[d.choice];
        started[d.choice] = true;
        const text = lead + d.text;
        if (text || d.finishReason || d.tokenIds.length && (common.returnTokenIds || logprobs !== undefined)) {
          await sse.send(
            chunk([
              {
                index: d.choice,
                text,
                logprobs: logprobs === undefined ? null : completionLogprobs(ctx.tokenizer, d.logprobs ?? [], textSoFar[d.choice]! + lead.length, logprobs),
                finish_reason: d.finishReason,
                stop_reason: null,
                ...(common.returnTokenIds ? { token_ids: d.tokenIds, ...(firstOfChoice ? { prompt_token_ids: choices[d.choice]!.promptTokenIds } : {}) } : {}),
              },
            ]),
          );
        }
        textSoFar[d.choice]! += text.length;
        if (sse.closed) break;
        next = await deltas.next();
      }
      if (!next.done) await deltas.return(undefined);
      if (common.includeUsage) await sse.send({ ...chunk([]), usage: usage(promptTokens, completionTokens) });
      sse.end();
    } catch (e) {
      if (reply.raw.headersSent) {
        await streamError(reply.raw, e);
        return;
      }
      throw e;
    } finally {
      admission.end();
    }
  });
}
