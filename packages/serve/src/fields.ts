/**
 * The one table of request fields: every field the OpenAI API or vLLM
 * defines for completions and chat, with what this server does with it.
 * `implemented` fields are read by the routes; `refused` ones get a 400
 * naming the field unless they hold a value that changes nothing (absent,
 * null, or the listed no-op); a field in neither list is unknown and gets a
 * 400 too. Nothing is accepted and silently ignored.
 */
import { badRequest } from './errors.js';
import type { Body } from './params.js';

export type Route = 'completions' | 'chat';

export interface FieldRule {
  routes: readonly Route[];
  status: 'implemented' | 'refused';
  /** Why it is refused, or what it does when implemented (for the docs and the error message). */
  note: string;
  /** Values of a refused field that ask for nothing this server lacks (besides null). */
  noop?: (v: unknown) => boolean;
}

const BOTH: readonly Route[] = ['completions', 'chat'];
const C: readonly Route[] = ['completions'];
const CHAT: readonly Route[] = ['chat'];
const impl = (routes: readonly Route[], note: string): FieldRule => ({ routes, status: 'implemented', note });
const refused = (routes: readonly Route[], note: string, noop?: (v: unknown) => boolean): FieldRule => ({ routes, status: 'refused', note, noop });
const emptyList = (v: unknown) => Array.isArray(v) && v.length === 0;

export const FIELDS: Readonly<Record<string, FieldRule>> = {
  model: impl(BOTH, 'must be the served name (404 otherwise)'),
  prompt: impl(C, 'a string, strings, token ids or lists of token ids'),
  messages: impl(CHAT, 'text content or lists of text parts (and a history\'s tool_calls / tool_call_id), rendered with the chat template'),
  max_tokens: impl(BOTH, 'tokens to generate at most (completions: 0 with echo)'),
  max_completion_tokens: impl(CHAT, 'as max_tokens'),
  temperature: impl(BOTH, 'sampling temperature'),
  top_p: impl(BOTH, 'nucleus sampling'),
  n: impl(BOTH, 'choices per prompt (at most 16)'),
  best_of: impl(BOTH, 'generate best_of, return the n of highest cumulative logprob (not with stream)'),
  stream: impl(BOTH, 'Server-Sent Events'),
  stream_options: impl(BOTH, 'include_usage, continuous_usage_stats'),
  stop: impl(BOTH, 'stop strings (at most 256)'),
  stop_token_ids: impl(BOTH, 'vLLM: stop at these token ids'),
  seed: impl(BOTH, 'reproducible sampling (choice i uses seed + i); within ±(2^53 − 1): a JSON number past that has lost its low bits'),
  logprobs: impl(BOTH, 'completions: top-k count (0..20); chat: true/false'),
  top_logprobs: impl(CHAT, 'with logprobs: true (0..20)'),
  echo: impl(BOTH, "completions: prepend the prompt to the text; with logprobs, its tokens' logprobs lead (the first null); max_tokens 0: the prompt alone. chat (vLLM): prepend the last message's content when it is an assistant message (or add_generation_prompt is false)"),
  presence_penalty: impl(BOTH, '-2..2'),
  frequency_penalty: impl(BOTH, '-2..2'),
  repetition_penalty: impl(BOTH, 'vLLM: > 0'),
  logit_bias: impl(BOTH, 'token id → bias in -100..100, added to the logit before sampling'),
  top_k: impl(BOTH, 'vLLM: keep the k most likely tokens (-1 or 0: off)'),
  min_p: impl(BOTH, 'vLLM: 0..1'),
  min_tokens: impl(BOTH, 'vLLM: no EOS, stop token or stop string before this many tokens'),
  ignore_eos: impl(BOTH, 'vLLM: keep going past EOS'),
  include_stop_str_in_output: impl(BOTH, 'vLLM: keep the matched stop string in the text'),
  skip_special_tokens: impl(BOTH, 'vLLM: leave special tokens out of the text (default true)'),
  return_token_ids: impl(BOTH, 'vLLM: add prompt_token_ids and token_ids'),
  add_special_tokens: impl(BOTH, 'vLLM: add the tokenizer\'s BOS (completions default true, chat default false)'),
  add_generation_prompt: impl(CHAT, 'template flag (default true)'),
  continue_final_message: impl(CHAT, 'leave the last assistant message open'),
  chat_template_kwargs: impl(CHAT, 'extra template variables'),
  response_format: refused(BOTH, 'only {"type": "text"} (no structured output)', (v) => isObj(v) && v.type === 'text' && Object.keys(v).length === 1),
  user: impl(BOTH, 'an end-user id; has no effect on generation, as in vLLM'),

  suffix: refused(C, 'no fill-in-the-middle'),
  tools: refused(CHAT, 'no tool calling', emptyList),
  tool_choice: refused(CHAT, 'no tool calling', (v) => v === 'none'),
  // With no tools (refused above) it asks for nothing; vLLM accepts it.
  parallel_tool_calls: refused(CHAT, 'no tool calling', (v) => typeof v === 'boolean'),
  functions: refused(CHAT, 'no tool calling', emptyList),
  function_call: refused(CHAT, 'no tool calling', (v) => v === 'none'),
  modalities: refused(CHAT, 'text only', (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text'),
  audio: refused(CHAT, 'text only'),
  prediction: refused(CHAT, 'no predicted outputs'),
  reasoning_effort: refused(CHAT, 'no reasoning models'),
  service_tier: refused(BOTH, 'one tier'),
  store: refused(CHAT, 'nothing is stored', (v) => v === false),
  metadata: refused(CHAT, 'nothing is stored'),
  web_search_options: refused(CHAT, 'no web search'),
  verbosity: refused(CHAT, 'no such control'),
  prompt_cache_key: refused(BOTH, 'the prefix cache needs no key'),
  safety_identifier: refused(BOTH, 'no moderation'),
  use_beam_search: refused(BOTH, 'no beam search', (v) => v === false),
  length_penalty: refused(BOTH, 'no beam search', (v) => v === 1),
  prompt_logprobs: impl(BOTH, 'vLLM: each prompt token\'s logprob and the k most likely there (0..20; not with stream)'),
  truncate_prompt_tokens: refused(BOTH, 'prompts are never truncated (too long: 400)'),
  allowed_token_ids: refused(BOTH, 'not implemented (logit_bias can ban tokens)'),
  bad_words: refused(BOTH, 'not implemented', emptyList),
  spaces_between_special_tokens: refused(BOTH, 'not implemented', (v) => v === true),
  logits_processors: refused(BOTH, 'no custom logits processors'),
  guided_json: refused(BOTH, 'no structured output'),
  guided_regex: refused(BOTH, 'no structured output'),
  guided_choice: refused(BOTH, 'no structured output'),
  guided_grammar: refused(BOTH, 'no structured output'),
  guided_decoding_backend: refused(BOTH, 'no structured output'),
  guided_whitespace_pattern: refused(BOTH, 'no structured output'),
  structured_outputs: refused(BOTH, 'no structured output'),
  priority: refused(BOTH, 'first come, first served', (v) => v === 0),
  request_id: refused(BOTH, 'ids are the server\'s'),
  return_tokens_as_token_ids: impl(BOTH, 'vLLM: logprobs name tokens "token_id:N" instead of their text'),
  prompt_embeds: refused(C, 'token or text prompts only'),
  cache_salt: refused(BOTH, 'not implemented'),
  kv_transfer_params: refused(BOTH, 'no disaggregated serving'),
  vllm_xargs: refused(BOTH, 'not implemented'),
  chat_template: refused(CHAT, 'the server\'s template only (start it with --chat-template)'),
  documents: refused(CHAT, 'no retrieval templates'),
  mm_processor_kwargs: refused(CHAT, 'text only'),
};

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** 400 for the first field of `b` this route does not implement (unknown, or refused with a value that asks for something). */
export function checkFields(b: Body, route: Route): void {
  for (const [key, v] of Object.entries(b)) {
    const rule = FIELDS[key];
    if (!rule || !rule.routes.includes(route)) {
      throw badRequest(`unknown field \`${key}\`: ${route === 'chat' ? '/v1/chat/completions' : '/v1/completions'} does not take it (this server refuses fields it does not implement rather than ignore them)`, key);
    }
    if (rule.status === 'refused' && v !== null && v !== undefined && !rule.noop?.(v)) {
      throw badRequest(`\`${key}\` is not supported by this server: ${rule.note}`, key);
    }
  }
}
