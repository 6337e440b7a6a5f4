/**
 * A real server on 127.0.0.1 over real ranks of weft-tiny-code, driven by
 * the official `openai` client (which reads the SSE framing itself): greedy
 * outputs equal Hugging Face's and the engine's own, streaming and not.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineClient } from './engine-client.js';
import { createServer, type WeftServer } from './server.js';
import { loadEngine, tinyCode, tinyCodeCases } from './test-support/engine.js';

let llm: EngineClient;
let server: WeftServer;
let url: string;
let client: OpenAI;
const cases = tinyCodeCases();
const M = 'weft-tiny-code';

beforeAll(async () => {
  llm = await loadEngine(tinyCode);
  server = await createServer(llm, { modelDir: tinyCode });
  url = await server.listen({ port: 0 });
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await server?.shutdown({ graceMs: 1000 });
  await llm?.close();
});

const greedy = { temperature: 0, max_tokens: 32, ignore_eos: true, return_token_ids: true } as const;

describe('completions', () => {
  it('greedy, several prompts in one request: Hugging Face tokens and text, and the same as LLM.generate', async () => {
    const r = await client.completions.create({ model: M, prompt: cases.map((c) => c.prompt), ...greedy } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.object).toBe('text_completion');
    expect(r.choices).toHaveLength(cases.length);
    const direct = await llm.generate(cases.map((c) => c.prompt), { temperature: 0, maxTokens: 32, ignoreEos: true });
    r.choices.forEach((ch, i) => {
      const x = ch as typeof ch & { token_ids: number[]; prompt_token_ids: number[] };
      expect(ch.index).toBe(i);
      expect(x.prompt_token_ids).toEqual(cases[i]!.input_ids);
      expect(x.token_ids).toEqual(cases[i]!.greedy);
      expect(ch.text).toBe(cases[i]!.greedy_text);
      expect(ch.finish_reason).toBe('length');
      expect(x.token_ids).toEqual(direct[i]!.tokenIds);
    });
    const promptTokens = cases.reduce((a, c) => a + c.input_ids.length, 0);
    // Prompts shorter than a KV block (16 tokens): nothing to find in the prefix cache.
    expect(r.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 32 * cases.length, total_tokens: promptTokens + 32 * cases.length, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('token-id prompts (one list and a list of lists) give the same tokens', async () => {
    const one = await client.completions.create({ model: M, prompt: cases[0]!.input_ids, ...greedy } as never);
    expect((one.choices[0] as unknown as { token_ids: number[] }).token_ids).toEqual(cases[0]!.greedy);
    const two = await client.completions.create({ model: M, prompt: [cases[1]!.input_ids, cases[2]!.input_ids], ...greedy } as never);
    expect(two.choices.map((c) => (c as unknown as { token_ids: number[] }).token_ids)).toEqual([cases[1]!.greedy, cases[2]!.greedy]);
  });

  it('streaming: deltas add up to the greedy text; include_usage ends with a usage chunk', async () => {
    const c = cases[2]!;
    const stream = await client.completions.create({ model: M, prompt: c.prompt, stream: true, stream_options: { include_usage: true }, ...greedy } as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    const ids: number[] = [];
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const ch of stream) {
      chunks++;
      if (ch.usage) usage = ch.usage;
      for (const choice of ch.choices) {
        text += choice.text;
        ids.push(...((choice as unknown as { token_ids?: number[] }).token_ids ?? []));
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    expect(chunks).toBeGreaterThan(5);
    expect(text).toBe(c.greedy_text);
    expect(ids).toEqual(c.greedy);
    expect(finish).toBe('length');
    expect(usage).toEqual({ prompt_tokens: c.input_ids.length, completion_tokens: 32, total_tokens: c.input_ids.length + 32, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('the SSE stream on the wire ends with data: [DONE]', async () => {
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'def f', max_tokens: 4, stream: true }) });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const body = await res.text();
    const frames = body.split('\n\n').filter(Boolean);
    expect(frames.every((f) => f.startsWith('data: '))).toBe(true);
    expect(frames.at(-1)).toBe('data: [DONE]');
  });

  it('n > 1 with a seed: n choices per prompt, reproducible, indexed prompt-major', async () => {
    const req = { model: M, prompt: ['def add(a, b):\n', 'class Model'], n: 3, temperature: 1, seed: 1234, max_tokens: 12, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming;
    const a = await client.completions.create(req);
    const b = await client.completions.create(req);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(a.choices.map((c) => c.text)).toEqual(b.choices.map((c) => c.text));
    expect(new Set(a.choices.slice(0, 3).map((c) => c.text)).size).toBeGreaterThan(1);
    expect(a.usage!.completion_tokens).toBe(6 * 12);
  });

  it('stop strings cut the text and finish with stop', async () => {
    const c = cases[2]!; // 'class Tensor' → 'Type(torch.nn.Module):\n    def __init__...'
    const r = await client.completions.create({ model: M, prompt: c.prompt, temperature: 0, max_tokens: 32, stop: ['__init__'] });
    expect(r.choices[0]!.text).toBe(c.greedy_text.slice(0, c.greedy_text.indexOf('__init__')));
    expect(r.choices[0]!.finish_reason).toBe('stop');
  });

  it('logprobs: the greedy token is the top one, top lists have the asked size', async () => {
    const r = await client.completions.create({ model: M, prompt: cases[1]!.prompt, temperature: 0, max_tokens: 6, ignore_eos: true, logprobs: 3 } as OpenAI.CompletionCreateParamsNonStreaming);
    const lp = r.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(6);
    expect(lp.token_logprobs).toHaveLength(6);
    expect(lp.tokens!.join('')).toBe(r.choices[0]!.text);
    lp.top_logprobs!.forEach((top, i) => {
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(1);
      expect(Object.keys(top).length).toBeLessThanOrEqual(3);
      expect(Math.max(...Object.values(top))).toBeCloseTo(lp.token_logprobs![i]!, 5);
      expect(lp.token_logprobs![i]!).toBeLessThanOrEqual(0);
    });
    expect(lp.text_offset![0]).toBe(0);
  });

  it('echo puts the prompt before the completion', async () => {
    const r = await client.completions.create({ model: M, prompt: cases[3]!.prompt, temperature: 0, max_tokens: 8, echo: true, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.choices[0]!.text.startsWith(cases[3]!.prompt)).toBe(true);
    expect(r.choices[0]!.text).toBe(cases[3]!.prompt + r.choices[0]!.text.slice(cases[3]!.prompt.length));
  });
});

describe('chat completions with the template from tokenizer_config.json', () => {
  const messages = [
    { role: 'system' as const, content: 'You write Python.' },
    { role: 'user' as const, content: 'a function that adds two numbers' },
  ];
  const rendered = '# system: You write Python.\n# user: a function that adds two numbers\n# assistant:\n';

  it('non-streaming: the rendered prompt goes to the engine; usage counts it', async () => {
    const r = await client.chat.completions.create({ model: M, messages, temperature: 0, max_completion_tokens: 16, return_token_ids: true } as never);
    const expectIds = (await (await fetch(`${url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: rendered, add_special_tokens: false }) })).json()) as { tokens: number[] };
    const direct = await llm.generate([expectIds.tokens], { temperature: 0, maxTokens: 16 });
    const x = r as unknown as { prompt_token_ids: number[] };
    expect(x.prompt_token_ids).toEqual(expectIds.tokens);
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(r.choices[0]!.message.content).toBe(direct[0]!.text);
    expect(r.usage!.prompt_tokens).toBe(expectIds.tokens.length);
    expect(r.usage!.completion_tokens).toBe(direct[0]!.tokenIds.length);
  });

  it('streaming with include_usage: role first, content deltas, finish reason, usage', async () => {
    const stream = await client.chat.completions.create({ model: M, messages, temperature: 0, max_completion_tokens: 16, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const ch of stream) {
      if (ch.usage) usage = ch.usage;
      for (const c of ch.choices) {
        role ??= c.delta.role;
        text += c.delta.content ?? '';
        finish = c.finish_reason ?? finish;
      }
    }
    const whole = await client.chat.completions.create({ model: M, messages, temperature: 0, max_completion_tokens: 16 });
    expect(role).toBe('assistant');
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usage).toEqual(whole.usage);
  });

  it('logprobs and top_logprobs', async () => {
    const r = await client.chat.completions.create({ model: M, messages, temperature: 0, max_completion_tokens: 5, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content.length).toBe(r.usage!.completion_tokens);
    for (const t of content) {
      expect(t.top_logprobs.length).toBe(2);
      expect(t.top_logprobs[0]!.logprob).toBeCloseTo(t.logprob, 5);
    }
  });
});

describe('the other routes', () => {
  it('/v1/models, /health, /tokenize, /detokenize', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['weft-tiny-code']);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const tok = (await (await fetch(`${url}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt: cases[0]!.prompt }), headers: { 'content-type': 'application/json' } })).json()) as { tokens: number[]; count: number };
    expect(tok.tokens).toEqual(cases[0]!.input_ids);
    expect(tok.count).toBe(cases[0]!.input_ids.length);
    const det = (await (await fetch(`${url}/detokenize`, { method: 'POST', body: JSON.stringify({ tokens: cases[0]!.greedy }), headers: { 'content-type': 'application/json' } })).json()) as { prompt: string };
    expect(det.prompt).toBe(cases[0]!.greedy_text);
  });

  it('/metrics: Prometheus text with engine gauges, token counters and latency histograms', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'weft:num_requests_running',
      'weft:num_requests_waiting',
      'weft:kv_cache_blocks_used',
      'weft:kv_cache_blocks_total',
      'weft:prompt_tokens_total',
      'weft:generation_tokens_total',
      'weft:prefix_cache_hits_total',
      'weft:time_to_first_token_seconds_bucket',
      'weft:time_per_output_token_seconds_bucket',
      'weft:e2e_request_latency_seconds_bucket',
    ]) {
      expect(text, name).toContain(name);
    }
    const gen = /^weft:generation_tokens_total\{model_name="weft-tiny-code"\} (\d+)/m.exec(text);
    expect(Number(gen?.[1])).toBeGreaterThan(100);
    expect(text).toMatch(/^weft:request_success_total\{model_name="weft-tiny-code",finished_reason="length"\} \d+/m);
  });

  it('the playground page is served at /', async () => {
    const res = await fetch(`${url}/`);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toContain('weft-tiny-code');
  });
});
