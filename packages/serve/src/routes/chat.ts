/** POST /v1/chat/completions: messages rendered with the chat template; streaming or whole. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import { parseMessages } from '../chat-template.js';
import type { ServeContext } from '../context.js';
import { badRequest } from '../errors.js';
import { checkFields } from '../fields.js';
import { collectChoices, runChoices } from '../generation.js';
import { chatLogprobs } from '../logprobs.js';
import { promptLogprobsField, readPromptLogprobs } from '../prompt-logprobs.js';
import { asBody, commonParams, MAX_LOGPROBS, optBool, optInt, type Body } from '../params.js';
import { checkLength, encodePrompt, usage } from './shared.js';
import { streamChoices } from './stream.js';

/** The prompt of a chat request: the rendered template, then its token ids (the template writes any BOS itself). */
export async function renderChat(ctx: ServeContext, b: Body): Promise<{ text: string; ids: number[]; echo: string }> {
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
  for (const m of messages) ctx.checkTextFits(m.content, 'messages');
  // The rendered text may not outgrow what the context could hold (a template that loops writes without end).
  const maxChars = ctx.llm.maxModelLen * (ctx.tokenizer?.maxTokenBytes ?? 64);
  let text = await ctx.text.renderChat(ctx.template, messages, { addGenerationPrompt, extra: (kwargs as Record<string, unknown>) ?? {} }, maxChars);
  if (cont) {
    // Leave the last (assistant) message open: cut what the template wrote after its content.
    const last = messages[messages.length - 1]!.content;
    const at = text.lastIndexOf(last);
    if (at >= 0) text = text.slice(0, at + last.length);
  }
  // vLLM's chat `echo`: the reply is prepended with the last message's content when that message has the reply's
  // role (assistant; with add_generation_prompt false vLLM answers in the last message's own role).
  const last = messages[messages.length - 1]!;
  const echo = (optBool(b, 'echo') ?? false) && (last.role === 'assistant' || !addGenerationPrompt) ? last.content : '';
  return { text, ids: await encodePrompt(ctx, text, optBool(b, 'add_special_tokens') ?? false, 'messages'), echo };
}

/** Registers the route; returns its handler (POST /invocations dispatches to it). */
export function chatRoute(app: FastifyInstance, ctx: ServeContext): RouteHandlerMethod {
  const handler: RouteHandlerMethod = async (req, reply) => {
    const b = asBody(req.body);
    checkFields(b, 'chat');
    ctx.checkModel(b.model);
    const common = commonParams(b, ctx.defaults, ctx.vocabSize);
    const wantLogprobs = optBool(b, 'logprobs') ?? false;
    const topLogprobs = optInt(b, 'top_logprobs', { min: 0, max: MAX_LOGPROBS });
    // top_logprobs: 0 asks for nothing, and clients send it without logprobs (vLLM refuses only a positive one).
    if (topLogprobs !== undefined && topLogprobs > 0 && !wantLogprobs) throw badRequest('top_logprobs needs logprobs: true', 'top_logprobs');
    const promptLogprobs = readPromptLogprobs(b, common.stream);
    // vLLM's return_tokens_as_token_ids: logprobs name each token `token_id:N` (what tokenString writes without a tokenizer).
    const lpTokenizer = optBool(b, 'return_tokens_as_token_ids') ? null : ctx.tokenizer;
    const sequences = common.sampling.bestOf ?? common.n;
    ctx.checkSequences(sequences);
    const prompt = await renderChat(ctx, b);
    const requested = optInt(b, 'max_completion_tokens', { min: 1 }) ?? optInt(b, 'max_tokens', { min: 1 });
    const maxTokens = requested ?? ctx.llm.maxModelLen - prompt.ids.length;
    const tokensParam = b.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
    checkLength(ctx, prompt.ids.length, maxTokens, tokensParam);
    ctx.checkResponseSize(common.n, maxTokens, wantLogprobs ? (topLogprobs ?? 0) : undefined, tokensParam);
    if (promptLogprobs !== undefined) ctx.checkResponseSize(1, prompt.ids.length, promptLogprobs, 'prompt_logprobs');
    const promptLps = promptLogprobs === undefined ? null : promptLogprobsField(lpTokenizer, (await ctx.llm.promptLogprobs([prompt.ids], promptLogprobs))[0]!, promptLogprobs);
    const params = { ...common.sampling, maxTokens, ...(wantLogprobs ? { logprobs: topLogprobs ?? 0 } : {}) };
    const admission = ctx.admit(reply, sequences);
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const deltas = runChoices(ctx.llm, [{ promptTokenIds: prompt.ids, params }], admission, ctx.metrics, ctx.model);
    const lp = (l: Parameters<typeof chatLogprobs>[1] | undefined) => (wantLogprobs ? chatLogprobs(lpTokenizer, l ?? [], topLogprobs ?? 0, ctx.tokenBytes) : null);
    try {
      if (!common.stream) {
        const { results, cachedTokens } = await collectChoices(deltas, common.n);
        return {
          id,
          object: 'chat.completion',
          created,
          model: ctx.model,
          system_fingerprint: ctx.systemFingerprint,
          choices: results.map((r, c) => ({
            index: c,
            message: { role: 'assistant', content: prompt.echo + r.text },
            logprobs: lp(r.logprobs),
            finish_reason: r.finishReason,
            stop_reason: r.stopReason,
            ...(common.returnTokenIds ? { token_ids: r.tokenIds } : {}),
          })),
          usage: usage(prompt.ids.length, results.reduce((a, r) => a + r.tokenIds.length, 0), cachedTokens),
          ...(common.returnTokenIds ? { prompt_token_ids: prompt.ids } : {}),
          ...(promptLps ? { prompt_logprobs: promptLps } : {}),
        };
      }
      await streamChoices(reply, ctx, deltas, { id, created, choices: common.n, promptTokens: prompt.ids.length, includeUsage: common.includeUsage, continuousUsage: common.continuousUsage }, {
        object: 'chat.completion.chunk',
        // The role comes first, in a delta of its own, as the OpenAI API sends it.
        opening: (c) => ({ index: c, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
        firstChunkExtra: common.returnTokenIds ? { prompt_token_ids: prompt.ids } : {},
        content(d, first) {
          const text = (first ? prompt.echo : '') + d.text;
          if (!text && !(d.tokenIds.length && (common.returnTokenIds || wantLogprobs))) return null;
          return { index: d.choice, delta: text ? { content: text } : {}, logprobs: lp(d.logprobs), ...(common.returnTokenIds ? { token_ids: d.tokenIds } : {}) };
        },
        closing: (choice) => ({ index: choice, delta: {}, logprobs: null, ...(common.returnTokenIds ? { token_ids: [] } : {}) }),
      });
    } finally {
      admission.end();
    }
  };
  app.post('/v1/chat/completions', handler);
  return handler;
}
