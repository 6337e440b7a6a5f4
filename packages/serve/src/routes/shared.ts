/** Helpers the generation routes share: prompt encoding, length limits, usage, errors after the stream began. */
import type { ServerResponse } from 'node:http';
import type { ServeContext } from '../context.js';
import { ApiError, badRequest, errorBody, toApiError } from '../errors.js';
import { SseWriter } from '../sse.js';

/** Token ids of a text prompt; long texts are tokenized off the event loop (the prompt worker). */
export async function encodePrompt(ctx: ServeContext, text: string, addSpecialTokens: boolean, param = 'prompt'): Promise<number[]> {
  if (!ctx.tokenizer) {
    throw badRequest(`this model is served without a tokenizer (no tokenizer.json): send ${param === 'prompt' ? 'the prompt as token ids' : 'token ids to /v1/completions'} instead of text`, param);
  }
  ctx.checkTextFits(text, param);
  return ctx.text.encode(text, addSpecialTokens);
}

/** Prompt plus requested tokens must fit the model's context, as vLLM checks. */
export function checkLength(ctx: ServeContext, promptLen: number, maxTokens: number, param: string): void {
  const max = ctx.llm.maxModelLen;
  if (promptLen >= max) throw new ApiError(400, `This model's maximum context length is ${max} tokens; the prompt has ${promptLen} tokens.`, 'prompt');
  if (promptLen + maxTokens > max) {
    throw badRequest(
      `This model's maximum context length is ${max} tokens. However, you requested ${promptLen + maxTokens} tokens (${promptLen} in the prompt, ${maxTokens} for the completion). Reduce ${param} to at most ${max - promptLen}.`,
      param,
    );
  }
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens?: number) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    ...(cachedTokens === undefined ? {} : { prompt_tokens_details: { cached_tokens: cachedTokens } }),
  };
}

/** The status is already 200 once a stream began: say what went wrong in the stream, as vLLM does, then end it. */
export async function streamError(res: ServerResponse, e: unknown, writeTimeoutMs: number): Promise<void> {
  const sse = new SseWriter(res, writeTimeoutMs);
  await sse.send(errorBody(toApiError(e)));
  sse.end();
}
