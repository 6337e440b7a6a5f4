/**
 * A conversation that holds earlier tool calls, rendered by a real server
 * (weft-tiny-code's ranks) with Qwen2.5's chat template, as a client replays
 * a history: the assistant turn's `tool_calls` reach the template with
 * `arguments` parsed into an object (as vLLM hands them), the tool turn's
 * `tool_call_id` too. They were dropped: the model saw an empty assistant
 * turn where it had called a tool. Malformed ones are a 400 naming them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { loadEngine, tinyCode } from './test-support/engine.js';

/** Qwen2.5's template, its tool-call history part (the tools preamble left out: `tools` is refused). */
const QWEN25 = `{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- endif %}
{%- for message in messages %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}{{- '<|im_start|>' + message.role }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}{{- '<|im_start|>user\\n<tool_response id="' + message.tool_call_id + '">\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}
{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}`;

let llm: Awaited<ReturnType<typeof loadEngine>>;
let server: WeftServer;
let url: string;

beforeAll(async () => {
  llm = await loadEngine(tinyCode);
  server = await createServer(llm, { modelDir: tinyCode, chatTemplate: QWEN25 });
  url = await server.listen({ port: 0 });
});

afterAll(async () => {
  await server?.shutdown({ graceMs: 200 });
  await llm?.close();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, any> }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** The prompt the template made of these messages, as text. */
async function rendered(messages: unknown[]): Promise<string> {
  const t = await post('/tokenize', { messages });
  expect(t.status, JSON.stringify(t.json)).toBe(200);
  return (await post('/detokenize', { tokens: t.json.tokens })).json.prompt as string;
}

const HISTORY = [
  { role: 'user', content: 'add 1 and 2' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a": 1, "b": 2}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '3' },
];

describe('tool calls in the history', () => {
  it("reach the template: the assistant's call with its arguments as an object, the tool's answer with its call id", async () => {
    expect(await rendered(HISTORY)).toBe(
      '<|im_start|>user\nadd 1 and 2<|im_end|>\n' +
        '<|im_start|>assistant\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response id="call_1">\n3\n</tool_response><|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    // The same history through chat completions serves.
    const r = await post('/v1/chat/completions', { messages: HISTORY, max_tokens: 2 });
    expect(r.status).toBe(200);
    expect(r.json.usage.prompt_tokens).toBe((await post('/tokenize', { messages: HISTORY })).json.count);
  });

  it('an empty tool_calls list (what a replayed OpenAI message carries) is no call', async () => {
    expect(await rendered([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo', tool_calls: [] }])).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n<|im_start|>assistant\n');
  });

  it.each([
    [[{ role: 'user', content: 'x', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }], 'messages[0].tool_calls: only assistant messages carry tool calls'],
    [[{ role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{"a": ' } }] }], 'messages[0].tool_calls[0].function.arguments is not valid JSON'],
    [[{ role: 'assistant', content: '', tool_calls: [{ type: 'function', function: {} }] }], 'messages[0].tool_calls[0] must be {type: "function", function: {name, arguments}}'],
    [[{ role: 'user', content: 'x', tool_call_id: 'c' }], 'messages[0].tool_call_id: only tool messages answer a tool call'],
  ])('%j: 400 naming it', async (messages, message) => {
    const r = await post('/v1/chat/completions', { messages, max_tokens: 2 });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ message, param: 'messages' });
  });
});

describe('tool options with no tools', () => {
  it('parallel_tool_calls true or false asks for nothing without tools (vLLM accepts it); a non-boolean is refused naming it', async () => {
    for (const v of [true, false]) expect((await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 1, parallel_tool_calls: v })).status).toBe(200);
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 1, parallel_tool_calls: 'yes' });
    expect(r.status).toBe(400);
    expect(r.json.error.param).toBe('parallel_tool_calls');
  });
});
