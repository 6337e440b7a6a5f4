/**
 * Chat templates: the Jinja template of the model's tokenizer_config.json
 * (`chat_template`, a string or a list of named templates), or one given with
 * `--chat-template FILE`, rendered with @huggingface/jinja as transformers'
 * `apply_chat_template` does. Parsed here, at start; rendered in the prompt
 * worker (prompt-worker.ts), under a time and memory limit.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { badRequest } from './errors.js';

export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
  /** An assistant turn's earlier tool calls, `arguments` parsed into an object as vLLM hands them to templates. */
  tool_calls?: { id?: string; type: 'function'; function: { name: string; arguments: unknown } }[];
  /** A tool turn's answer to this call. */
  tool_call_id?: string;
}

export interface ChatTemplate {
  /** Where it came from, for messages. */
  source: string;
  /** The Jinja text. */
  text: string;
  /** The variables a render of these messages gets, as transformers passes them. */
  context(messages: ChatMessage[], opts: { addGenerationPrompt: boolean; extra?: Record<string, unknown> }): Record<string, unknown>;
}

interface TokenizerConfig {
  chat_template?: unknown;
  bos_token?: unknown;
  eos_token?: unknown;
}

function tokenText(t: unknown): string {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string') return (t as { content: string }).content;
  return '';
}

function readTokenizerConfig(modelDir: string | undefined): TokenizerConfig {
  if (!modelDir) return {};
  const file = join(modelDir, 'tokenizer_config.json');
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TokenizerConfig;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * The template to serve with: `templateText` (from --chat-template) wins, else the model's.
 * Null when there is none; chat requests then get a 400 saying so. A template that does not parse fails here, at start.
 */
export function loadChatTemplate(modelDir: string | undefined, templateText?: { text: string; source: string }): ChatTemplate | null {
  const cfg = readTokenizerConfig(modelDir);
  let text: string | undefined;
  let source: string;
  if (templateText) {
    text = templateText.text;
    source = templateText.source;
  } else {
    source = `${modelDir}/tokenizer_config.json`;
    const t = cfg.chat_template;
    if (typeof t === 'string') text = t;
    else if (Array.isArray(t)) {
      // A list of {name, template}: 'default' is the chat one.
      const def = t.find((x: { name?: unknown }) => x?.name === 'default') ?? t[0];
      if (def && typeof def.template === 'string') text = def.template;
    }
  }
  if (text === undefined) return null;
  try {
    new Template(text);
  } catch (e) {
    throw new Error(`chat template from ${source} does not parse: ${(e as Error).message}`);
  }
  const bos = tokenText(cfg.bos_token);
  const eos = tokenText(cfg.eos_token);
  const body = text;
  return {
    source,
    text: body,
    context: (messages, { addGenerationPrompt, extra }) => ({ ...extra, messages, add_generation_prompt: addGenerationPrompt, bos_token: bos, eos_token: eos }),
  };
}

/** `messages` of a chat request, checked; content given as a list of text parts is joined. */
export function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v)) throw badRequest('messages must be a list of {role, content} objects', 'messages');
  if (v.length === 0) throw badRequest('messages must not be empty', 'messages');
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null) throw badRequest(`messages[${i}] must be an object with role and content`, 'messages');
    const { role, content, name } = m as Record<string, unknown>;
    // Any role the template knows (vLLM passes custom roles through); a template that refuses one says so (a 400).
    if (typeof role !== 'string' || role === '') {
      throw badRequest(`messages[${i}].role must be a non-empty string (system, developer, user, assistant, tool, or one the chat template knows); got ${JSON.stringify(role)}`, 'messages');
    }
    let text: string;
    if (typeof content === 'string') text = content;
    else if (content === null || content === undefined) text = '';
    else if (Array.isArray(content)) {
      text = content
        .map((p, j) => {
          if (p && typeof p === 'object' && (p as { type?: unknown }).type === 'text' && typeof (p as { text?: unknown }).text === 'string') return (p as { text: string }).text;
          throw badRequest(`messages[${i}].content[${j}]: only {"type": "text", "text": ...} parts are supported`, 'messages');
        })
        .join('\n');
    } else throw badRequest(`messages[${i}].content must be a string or a list of text parts`, 'messages');
    const { tool_calls: calls, tool_call_id: callId } = m as Record<string, unknown>;
    return {
      role,
      content: text,
      ...(typeof name === 'string' ? { name } : {}),
      ...toolCalls(calls, role, i),
      ...(callId === undefined || callId === null ? {} : { tool_call_id: toolCallId(callId, role, i) }),
    };
  });
}

/**
 * A past assistant turn's tool calls go to the template (they were dropped, so the model saw an empty turn where
 * it had called a tool). `arguments` is a JSON string in the API; templates (Qwen2.5's `tojson`, Llama 3.1's)
 * expect the object, which vLLM parses for them.
 */
function toolCalls(v: unknown, role: string, i: number): Pick<ChatMessage, 'tool_calls'> {
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return {};
  const where = `messages[${i}].tool_calls`;
  if (role !== 'assistant') throw badRequest(`${where}: only assistant messages carry tool calls`, 'messages');
  if (!Array.isArray(v)) throw badRequest(`${where} must be a list of {type: "function", function: {name, arguments}}`, 'messages');
  return {
    tool_calls: v.map((c: unknown, j) => {
      const call = (c ?? {}) as { id?: unknown; type?: unknown; function?: { name?: unknown; arguments?: unknown } };
      if (typeof call !== 'object' || (call.type !== undefined && call.type !== 'function') || typeof call.function?.name !== 'string') {
        throw badRequest(`${where}[${j}] must be {type: "function", function: {name, arguments}}`, 'messages');
      }
      let args: unknown = call.function.arguments ?? {};
      if (typeof args === 'string') {
        try {
          args = JSON.parse(args);
        } catch {
          throw badRequest(`${where}[${j}].function.arguments is not valid JSON`, 'messages');
        }
      }
      return { ...(typeof call.id === 'string' ? { id: call.id } : {}), type: 'function' as const, function: { name: call.function.name, arguments: args } };
    }),
  };
}

function toolCallId(v: unknown, role: string, i: number): string {
  if (role !== 'tool') throw badRequest(`messages[${i}].tool_call_id: only tool messages answer a tool call`, 'messages');
  if (typeof v !== 'string') throw badRequest(`messages[${i}].tool_call_id must be a string`, 'messages');
  return v;
}
