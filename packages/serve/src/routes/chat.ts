/** POST /v1/chat/completions: messages rendered with the chat template; streaming or whole. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { parseMessages } from '../chat-template.js';
import type { ServeContext } from '../context.js';
import { badRequest } from '../errors.js';
import { collectChoices, runChoices, type ChoiceRequest } from '../generation.js';
import { chatLogprobs } from '../logprobs.js';
import { asBody, choiceSeed, commonParams, MAX_LOGPROBS, optBool, optInt, type Body } from '../params.js';
import { SseWriter } from '../sse.js';
import { checkLength, encodePrompt, streamError, usage } from './shared.js';

/** The prompt of a chat request: the rendered template, then its token ids (the template writes any BOS itself). */
export function renderChat(ctx: ServeContext, b: Body): { text: string; ids: number[] } {
  const messages = parseMessages(b.messages);
  if (!ctx.template) {
    throw badRequest(
      `the model \`${ctx.model}\` has no chat template (no chat_template in its tokenizer_config.json): start the server with --chat-template FILE, or use /v1/completions`,
      'messages',
    );
  }
  const cont = optBool(b, 'continue_final_message') ?? false;
  const addGenerationPrompt = optBool(b, 'add_generation_prompt') ?? !cont;
  if (cont && addGenerationPrompt) throw badRequest('continue_final_message and add_generation_prompt cannot both be true', 'continue_final_message');
  const kwargs = b.chat_template_kwargs;
  if (kwargs !== undefined && kwargs !== null && (typeof kwargs !== 'object' || Array.isArray(kwargs))) throw badRequest('chat_template_kwargs must be an object', 'chat_template_kwargs');
  let text = ctx.template.render(messages, { addGenerationPrompt, extra: (kwargs as Record<string, unknown>) ?? {} });
  if (cont) {
    // Leave the last (assistant) message open: cut what the template wrote after its content.
    const last = messages[messages.length - 1]!.content;
    const at = text.lastIndexOf(last);
    if (at >= 0) text = text.slice(0, at + last.length);
  }
  return { text, ids: encodePrompt(ctx, text, false, 'messages') };
}

export function chatRoute(app: FastifyInstance, ctx: ServeContext): void {
  app.post('/v1/chat/completions', async (req, reply) => {
    const b = asBody(req.body);
    ctx.checkModel(b.model);
    const common = commonParams(b, ctx.defaults);
    const wantLogprobs = optBool(b, 'logprobs') ?? false;
    const topLogprobs = optInt(b, 'top_logprobs', { min: 0, max: MAX_LOGPROBS });
    if (topLogprobs !== undefined && !wantLogprobs) throw badRequest('top_logprobs needs logprobs: true', 'top_logprobs');
    const prompt = renderChat(ctx, b);
    const requested = optInt(b, 'max_completion_tokens', { min: 1 }) ?? optInt(b, 'max_tokens', { min: 1 });
    const maxTokens = requested ?? ctx.llm.maxModelLen - prompt.ids.length;
    checkLength(ctx, prompt.ids.length, maxTokens, b.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens');
    const choices: ChoiceRequest[] = Array.from({ length: common.n }, (_, i) => ({
      promptTokenIds: prompt.ids,
      params: { ...common.sampling, n: 1, maxTokens, seed: choiceSeed(common.seed, i), ...(wantLogprobs ? { logprobs: topLogprobs ?? 0 } : {}) },
    }));
    const admission = ctx.admit(reply, choices.length);
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const deltas = runChoices(ctx.llm, choices, admission.signal, ctx.metrics, ctx.model);
    const lp = (l: Parameters<typeof chatLogprobs>[1] | undefined) => (wantLogprobs ? chatLogprobs(ctx.tokenizer, l ?? [], topLogprobs ?? 0) : null);
    try {
      if (!common.stream) {
        const results = await collectChoices(deltas, choices.length);
        return {
          id,
          object: 'chat.completion',
          created,
          model: ctx.model,
          choices: results.map((r, c) => ({
            index: c,
            message: { role: 'assistant', content: r.text },
            logprobs: lp(r.logprobs),
            finish_reason: r.finishReason,
            stop_reason: null,
            ...(common.returnTokenIds ? { token_ids: r.tokenIds } : {}),
          })),
          usage: usage(prompt.ids.length, results.reduce((a, r) => a + r.tokenIds.length, 0)),
          ...(common.returnTokenIds ? { prompt_token_ids: prompt.ids } : {}),
        };
      }
      const first = await deltas.next();
      const sse = new SseWriter(reply.raw);
      reply.hijack();
      sse.start();
      const chunk = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}) => ({
        id,
        object: 'chat.completion.chunk',
        created,
        model: ctx.model,
        choices: choice ? [choice] : [],
        ...(common.includeUsage ? { usage: null } : {}),
        ...extra,
      });
      // The role comes first, in a delta of its own, as the OpenAI API sends it.
      for (let c = 0; c < choices.length; c++) {
        await sse.send(chunk({ index: c, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }, common.returnTokenIds && c === 0 ? { prompt_token_ids: prompt.ids } : {}));
      }
      let completionTokens = 0;
      let next = first;
      while (!next.done && !sse.closed) {
        const d = next.value;
        completionTokens += d.tokenIds.length;
        if (d.text || d.finishReason || (d.tokenIds.length && (common.returnTokenIds || wantLogprobs))) {
          await sse.send(
            chunk({
              index: d.choice,
              delta: d.text ? { content: d.text } : {},
              logprobs: lp(d.logprobs),
              finish_reason: d.finishReason,
              stop_reason: null,
              ...(common.returnTokenIds ? { token_ids: d.tokenIds } : {}),
            }),
          );
        }
        next = await deltas.next();
      }
      if (!next.done) await deltas.return(undefined);
      if (common.includeUsage) await sse.send({ ...chunk(null), usage: usage(prompt.ids.length, completionTokens) });
      sse.end();
    } catch (e) {
      if (reply.raw.headersSent) return streamError(reply.raw, e);
      throw e;
    } finally {
      admission.end();
    }
  });
}
