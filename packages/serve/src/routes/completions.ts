/** POST /v1/completions: prompts as text, texts, token ids or lists of them; streaming or whole. */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import type { ServeContext } from '../context.js';
import { badRequest } from '../errors.js';
import { checkFields } from '../fields.js';
import { collectChoices, runChoices, type ChoiceDelta, type PromptRequest } from '../generation.js';
import { completionLogprobs, type CompletionLogprobs } from '../logprobs.js';
import { promptLogprobsField, readPromptLogprobs } from '../prompt-logprobs.js';
import { asBody, commonParams, MAX_LOGPROBS, optBool, optInt, tokenIdList, type Body } from '../params.js';
import { checkLength, encodePrompt, usage } from './shared.js';
import { streamChoices } from './stream.js';

/** Prompts per request; with n, prompts × n is bounded by the waiting queue (context.ts). */
const MAX_PROMPTS = 256;

/** `prompt` in any of its four forms, as token-id lists. */
async function readPrompts(ctx: ServeContext, b: Body, addSpecialTokens: boolean, sequencesPerPrompt: number): Promise<{ ids: number[]; text: string | null }[]> {
  const p = b.prompt;
  let list: (string | number[])[];
  if (typeof p === 'string') list = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) list = [p as number[]];
  else if (Array.isArray(p) && p.length > 0 && (p.every((x) => typeof x === 'string') || p.every((x) => Array.isArray(x)))) list = p as (string | number[])[];
  else if (p === undefined || p === null) throw badRequest('prompt is required', 'prompt');
  else if (Array.isArray(p) && p.length === 0) throw badRequest('prompt must not be empty', 'prompt');
  else throw badRequest('prompt must be a string, a list of strings, a list of token ids, or a list of lists of token ids', 'prompt');
  if (list.length > MAX_PROMPTS) throw badRequest(`at most ${MAX_PROMPTS} prompts per request, got ${list.length}`, 'prompt');
  ctx.checkSequences(list.length * sequencesPerPrompt);
  // Every text's length is checked before any is tokenized.
  for (const x of list) if (typeof x === 'string') ctx.checkTextFits(x, 'prompt');
  const out = [];
  for (const x of list) out.push(typeof x === 'string' ? { ids: await encodePrompt(ctx, x, addSpecialTokens), text: x } : { ids: tokenIdList(x, 'prompt', ctx.vocabSize), text: null });
  return out;
}

/** max_tokens 0 (with echo): each choice ends at once, with nothing generated; the route adds the echoed prompt. */
async function* echoOnly(choices: number): AsyncGenerator<ChoiceDelta> {
  for (let choice = 0; choice < choices; choice++) yield { choice, text: '', tokenIds: [], logprobs: [], finishReason: 'length', stopReason: null };
}

/** Registers the route; returns its handler (POST /invocations dispatches to it). */
export function completionsRoute(app: FastifyInstance, ctx: ServeContext): RouteHandlerMethod {
  const handler: RouteHandlerMethod = async (req, reply) => {
    const b = asBody(req.body);
    checkFields(b, 'completions');
    ctx.checkModel(b.model);
    const common = commonParams(b, ctx.defaults, ctx.vocabSize);
    // No tokenizer, no text: a stop string could never match, and nothing is accepted only to be ignored.
    if (!ctx.tokenizer && common.sampling.stop?.length) throw badRequest('this model is served without a tokenizer (no tokenizer.json): stop strings can never match; use stop_token_ids', 'stop');
    const echo = optBool(b, 'echo') ?? false;
    // max_tokens 0 with echo: the prompt back (with its logprobs), nothing generated — how eval harnesses score text.
    const maxTokens = optInt(b, 'max_tokens', { min: 0 }) ?? 16;
    if (maxTokens === 0 && !echo) throw badRequest('max_tokens must be at least 1 (0 only with echo: the prompt back, nothing generated)', 'max_tokens');
    const logprobs = optInt(b, 'logprobs', { min: 0, max: MAX_LOGPROBS });
    // vLLM's return_tokens_as_token_ids: logprobs name each token `token_id:N` (what tokenString writes without a tokenizer).
    const lpTokenizer = optBool(b, 'return_tokens_as_token_ids') ? null : ctx.tokenizer;
    const promptLogprobs = readPromptLogprobs(b, common.stream);
    const perPrompt = common.sampling.bestOf ?? common.n;
    const prompts = await readPrompts(ctx, b, optBool(b, 'add_special_tokens') ?? true, perPrompt);
    for (const p of prompts) {
      if (p.ids.length === 0) throw badRequest('prompt must not be empty', 'prompt');
      checkLength(ctx, p.ids.length, Math.max(maxTokens, 1), 'max_tokens');
    }
    const n = common.n;
    // An echoed prompt's logprobs are part of the response as much as the generated ones.
    const echoLps = echo && logprobs !== undefined;
    const longest = Math.max(...prompts.map((p) => p.ids.length));
    ctx.checkResponseSize(prompts.length * n, maxTokens + (echoLps ? longest : 0) + (promptLogprobs !== undefined ? longest : 0), logprobs === undefined && promptLogprobs === undefined ? undefined : Math.max(logprobs ?? 0, promptLogprobs ?? 0), 'max_tokens');
    const requests: PromptRequest[] = prompts.map((p) => ({ promptTokenIds: p.ids, params: { ...common.sampling, maxTokens, ...(logprobs !== undefined ? { logprobs } : {}) } }));
    const echoText = (c: number) => {
      const p = prompts[Math.floor(c / n)]!;
      return echo ? (p.text ?? ctx.tokenizer?.decode(p.ids) ?? '') : '';
    };
    // vLLM: with echo and logprobs, the prompt's own logprobs (the first token's null) lead the choice's list, and
    // text_offset counts token strings from the start.
    // One full-sequence pass serves both echo's logprobs and prompt_logprobs.
    const promptLps = echoLps || promptLogprobs !== undefined ? await ctx.llm.promptLogprobs(prompts.map((p) => p.ids), Math.max(echoLps ? logprobs! : 0, promptLogprobs ?? 0)) : null;
    const promptLpsField = promptLogprobs === undefined ? null : promptLps!.map((lps) => promptLogprobsField(lpTokenizer, lps, promptLogprobs));
    const echoLogprobs = (c: number) => {
      const p = prompts[Math.floor(c / n)]!;
      return completionLogprobs(lpTokenizer, promptLps![Math.floor(c / n)]!, 0, logprobs!, p.ids[0]);
    };
    const endOf = (lp: CompletionLogprobs, from: number) => (lp.tokens.length ? lp.text_offset.at(-1)! + lp.tokens.at(-1)!.length : from);
    const withEcho = (c: number, rest: (start: number) => CompletionLogprobs): CompletionLogprobs => {
      if (!echoLps) return rest(echoText(c).length);
      const head = echoLogprobs(c);
      const tail = rest(endOf(head, 0));
      return { tokens: [...head.tokens, ...tail.tokens], token_logprobs: [...head.token_logprobs, ...tail.token_logprobs], top_logprobs: [...head.top_logprobs, ...tail.top_logprobs], text_offset: [...head.text_offset, ...tail.text_offset] };
    };
    const admission = ctx.admit(reply, prompts.length * perPrompt);
    const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const promptTokens = prompts.reduce((a, p) => a + p.ids.length, 0);
    const deltas = maxTokens === 0 ? echoOnly(prompts.length * n) : runChoices(ctx.llm, requests, admission, ctx.metrics, ctx.model);
    try {
      if (!common.stream) {
        const { results, cachedTokens } = await collectChoices(deltas, prompts.length * n);
        return {
          id,
          object: 'text_completion',
          created,
          model: ctx.model,
          system_fingerprint: ctx.systemFingerprint,
          choices: results.map((r, c) => ({
            index: c,
            text: echoText(c) + r.text,
            logprobs: logprobs === undefined ? null : withEcho(c, (start) => completionLogprobs(lpTokenizer, r.logprobs, start, logprobs)),
            finish_reason: r.finishReason,
            stop_reason: r.stopReason,
            ...(common.returnTokenIds ? { prompt_token_ids: prompts[Math.floor(c / n)]!.ids, token_ids: r.tokenIds } : {}),
            ...(promptLpsField ? { prompt_logprobs: promptLpsField[Math.floor(c / n)] } : {}),
          })),
          usage: usage(promptTokens, results.reduce((a, r) => a + r.tokenIds.length, 0), cachedTokens),
        };
      }
      // text_offset counts the tokens' strings, as the whole response does: the text sent so far lags the tokens
      // while a possible stop string (or a character's first bytes) is held back.
      const tokenOffset = new Map<number, number>();
      await streamChoices(reply, ctx, deltas, { id, created, choices: prompts.length * n, promptTokens, includeUsage: common.includeUsage, continuousUsage: common.continuousUsage }, {
        object: 'text_completion',
        content(d, first) {
          const lead = first ? echoText(d.choice) : '';
          const text = lead + d.text;
          if (!text && !(d.tokenIds.length && (common.returnTokenIds || logprobs !== undefined))) return null;
          const start = first ? lead.length : (tokenOffset.get(d.choice) ?? 0);
          const rest = (at: number) => completionLogprobs(lpTokenizer, d.logprobs ?? [], at, logprobs!);
          const lp = logprobs === undefined ? null : first ? withEcho(d.choice, rest) : rest(start);
          if (lp) tokenOffset.set(d.choice, endOf(lp, start));
          return {
            index: d.choice,
            text,
            logprobs: lp,
            ...(common.returnTokenIds ? { token_ids: d.tokenIds, ...(first ? { prompt_token_ids: prompts[Math.floor(d.choice / n)]!.ids } : {}) } : {}),
          };
        },
        // The same fields as the choice's other chunks (vLLM's clients read logprobs.tokens and token_ids from each).
        closing: (choice) => ({
          index: choice,
          text: '',
          logprobs: logprobs === undefined ? null : { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
          ...(common.returnTokenIds ? { token_ids: [] } : {}),
        }),
      });
    } finally {
      admission.end();
    }
  };
  app.post('/v1/completions', handler);
  return handler;
}
