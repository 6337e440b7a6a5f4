/**
 * Requests that must fail, each with its status and an OpenAI-shaped body,
 * while the server keeps serving: malformed bodies, auth, the bounded
 * waiting queue, a client that disconnects mid-stream, a model without a
 * tokenizer or chat template, and shutdown with requests in flight.
 */
import { mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { llamaTiny, llamaTinyCases, loadEngine, tinyCode } from './test-support/engine.js';

let llm: Awaited<ReturnType<typeof loadEngine>>;
let server: WeftServer;
let url: string;

beforeAll(async () => {
  llm = await loadEngine(tinyCode);
  server = await createServer(llm, { modelDir: tinyCode, apiKey: 'sk-test-key', maxWaitingRequests: 8, bodyLimit: 1 << 20 });
  url = await server.listen({ port: 0 });
});

afterAll(async () => {
  await server?.shutdown({ graceMs: 500 });
  await llm?.close();
});

const AUTH = { authorization: 'Bearer sk-test-key', 'content-type': 'application/json' };

async function post(path: string, body: unknown, headers: Record<string, string> = AUTH) {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* SSE or empty */
  }
  return { status: res.status, retryAfter: res.headers.get('retry-after'), json: json as { error?: { message: string; type: string; param: string | null; code: unknown } }, text };
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stillServes = async () => {
  const r = await post('/v1/completions', { prompt: 'def f', max_tokens: 2 });
  expect(r.status).toBe(200);
};

describe('malformed requests: each its 4xx, OpenAI-shaped, and the server keeps serving', () => {
  const ok = { model: 'weft-tiny-code', prompt: 'def f', max_tokens: 4 };
  const msgs = [{ role: 'user', content: 'hi' }];
  it.each([
    ['invalid JSON', 400, '/v1/completions', '{"prompt": "x", ', null],
    ['body is a list', 400, '/v1/completions', [1, 2], null],
    ['prompt missing', 400, '/v1/completions', { max_tokens: 3 }, 'prompt'],
    ['prompt of wrong type', 400, '/v1/completions', { prompt: 42 }, 'prompt'],
    ['empty prompt list', 400, '/v1/completions', { prompt: [] }, 'prompt'],
    ['empty prompt string', 400, '/v1/completions', { prompt: '' }, 'prompt'],
    ['max_tokens negative', 400, '/v1/completions', { ...ok, max_tokens: -1 }, 'max_tokens'],
    ['max_tokens zero', 400, '/v1/completions', { ...ok, max_tokens: 0 }, 'max_tokens'],
    ['max_tokens huge', 400, '/v1/completions', { ...ok, max_tokens: 10 ** 9 }, 'max_tokens'],
    ['max_tokens a string', 400, '/v1/completions', { ...ok, max_tokens: '5' }, 'max_tokens'],
    ['temperature negative', 400, '/v1/completions', { ...ok, temperature: -0.5 }, 'temperature'],
    ['top_p above 1', 400, '/v1/completions', { ...ok, top_p: 1.5 }, 'top_p'],
    ['n zero', 400, '/v1/completions', { ...ok, n: 0 }, 'n'],
    ['logprobs too many', 400, '/v1/completions', { ...ok, logprobs: 50 }, 'logprobs'],
    ['stop of wrong type', 400, '/v1/completions', { ...ok, stop: 7 }, 'stop'],
    ['token id out of range', 400, '/v1/completions', { prompt: [1, 2, 99999] }, 'prompt'],
    ['negative token id', 400, '/v1/completions', { prompt: [1, -2] }, 'prompt'],
    ['unknown model', 404, '/v1/completions', { ...ok, model: 'gpt-4' }, 'model'],
    ['stream_options without stream', 400, '/v1/completions', { ...ok, stream_options: { include_usage: true } }, 'stream_options'],
    ['empty messages', 400, '/v1/chat/completions', { messages: [] }, 'messages'],
    ['messages not a list', 400, '/v1/chat/completions', { messages: 'hi' }, 'messages'],
    // any string role goes to the template, as vLLM passes custom roles (peer-suite.test.ts); a non-string is malformed
    ['bad role', 400, '/v1/chat/completions', { messages: [{ role: 7, content: 'hi' }] }, 'messages'],
    ['top_logprobs without logprobs', 400, '/v1/chat/completions', { messages: msgs, top_logprobs: 2 }, 'top_logprobs'],
    ['unknown model (chat)', 404, '/v1/chat/completions', { messages: msgs, model: 'nope' }, 'model'],
    ['detokenize ids out of range', 400, '/detokenize', { tokens: [5000000] }, 'tokens'],
  ] as const)('%s → %i', async (_name, status, path, body, param) => {
    const r = await post(path, body);
    expect(r.status, r.text).toBe(status);
    expect(typeof r.json?.error?.message).toBe('string');
    expect(typeof r.json?.error?.type).toBe('string');
    if (param) expect(r.json!.error!.param).toBe(param);
  });

  it('a 10 MB body → 413', async () => {
    const r = await post('/v1/completions', { prompt: 'x'.repeat(10 << 20) });
    expect(r.status).toBe(413);
    expect(r.json?.error?.type).toBe('invalid_request_error');
  });

  it('unknown route → 404 in the same shape', async () => {
    const r = await post('/v1/embeddings', { input: 'x' });
    expect(r.status).toBe(404);
    expect(r.json?.error?.message).toMatch(/no route POST \/v1\/embeddings/);
  });

  it('after all that, the server still serves', stillServes);
});

describe('auth', () => {
  it('no key, a wrong key → 401; the right key through the official client works; /health and the page stay open, /metrics needs the key', async () => {
    expect((await post('/v1/completions', { prompt: 'x' }, { 'content-type': 'application/json' })).status).toBe(401);
    const wrong = await post('/v1/completions', { prompt: 'x' }, { 'content-type': 'application/json', authorization: 'Bearer sk-wrong' });
    expect(wrong.status).toBe(401);
    expect(wrong.json?.error?.type).toBe('authentication_error');
    const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const good = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-test-key', maxRetries: 0 });
    expect((await good.models.list()).data[0]!.id).toBe('weft-tiny-code');
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect((await fetch(`${url}/`)).status).toBe(200);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: AUTH })).status).toBe(200);
  });
});

describe('load limits and disconnects', () => {
  it('past the waiting-queue bound new requests get 429, and the rest finish', async () => {
    const body = { prompt: 'def f', max_tokens: 64, ignore_eos: true };
    const all = await Promise.all(Array.from({ length: 40 }, () => post('/v1/completions', body)));
    const codes = all.map((r) => r.status);
    expect(codes.filter((c) => c === 429).length).toBeGreaterThan(0);
    expect(codes.every((c) => c === 200 || c === 429)).toBe(true);
    const rejected = all.find((r) => r.status === 429)!;
    expect(rejected.json?.error?.type).toBe('rate_limit_error');
    expect(rejected.retryAfter).toBe('1');
    await stillServes();
  });

  it('a client that disconnects mid-stream aborts its request: its KV blocks come back', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: AUTH,
      body: JSON.stringify({ prompt: 'def f', max_tokens: 900, ignore_eos: true, stream: true }),
      signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    expect(llm.stats().running).toBe(1);
    expect(llm.stats().kvBlocksUsed).toBeGreaterThan(0);
    ctl.abort();
    await waitFor(() => llm.stats().running === 0 && llm.stats().waiting === 0 && server.activeRequests === 0, 5000);
    expect(llm.stats().kvBlocksUsed).toBe(0);
    const metrics = await (await fetch(`${url}/metrics`, { headers: AUTH })).text();
    expect(metrics).toMatch(/^weft:request_success_total\{model_name="weft-tiny-code",finished_reason="abort"\} [1-9]/m);
  });
});

describe('models without a tokenizer or a chat template', () => {
  it('no tokenizer.json (llama-tiny): token-id prompts serve with empty text and the HF tokens; text gets a clear 400', async () => {
    const tiny = await loadEngine(llamaTiny);
    const s = await createServer(tiny, { modelDir: llamaTiny });
    const u = await s.listen({ port: 0 });
    try {
      const client = new OpenAI({ baseURL: `${u}/v1`, apiKey: 'x', maxRetries: 0 });
      const cases = llamaTinyCases();
      const r = await client.completions.create({ model: 'llama-tiny', prompt: cases.map((c) => c.input_ids), temperature: 0, max_tokens: 8, ignore_eos: true, return_token_ids: true } as OpenAI.CompletionCreateParamsNonStreaming);
      r.choices.forEach((c, i) => {
        expect(c.text).toBe('');
        expect((c as unknown as { token_ids: number[] }).token_ids).toEqual(cases[i]!.greedy);
      });
      const text = await fetch(`${u}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hello' }) });
      expect(text.status).toBe(400);
      expect(((await text.json()) as { error: { message: string } }).error.message).toMatch(/without a tokenizer.*token ids/);
      const chat = await fetch(`${u}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
      expect(chat.status).toBe(400);
    } finally {
      await s.shutdown({ graceMs: 100 });
      await tiny.close();
    }
  });

  it('a tokenizer but no chat template: chat gets a 400 naming --chat-template; --chat-template supplies one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-notemplate-'));
    for (const f of readdirSync(tinyCode)) if (f !== 'tokenizer_config.json') symlinkSync(join(tinyCode, f), join(dir, f));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|end_of_text|>' }));
    const plain = await createServer(llm, { modelDir: dir, servedModelName: 'plain' });
    const withTemplate = await createServer(llm, { modelDir: dir, servedModelName: 'templated', chatTemplate: '{% for m in messages %}>> {{ m.content }}\n{% endfor %}' });
    const [u1, u2] = [await plain.listen({ port: 0 }), await withTemplate.listen({ port: 0 })];
    try {
      const body = JSON.stringify({ messages: [{ role: 'user', content: 'def add' }], max_tokens: 3 });
      const r1 = await fetch(`${u1}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(r1.status).toBe(400);
      expect(((await r1.json()) as { error: { message: string } }).error.message).toMatch(/no chat template.*--chat-template/);
      const r2 = await fetch(`${u2}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(r2.status).toBe(200);
      const tok = (await (await fetch(`${u2}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'def add' }], return_token_strs: true }) })).json()) as { token_strs: string[] };
      expect(tok.token_strs.join('')).toBe('>> def add\n');
    } finally {
      await plain.shutdown({ graceMs: 100 });
      await withTemplate.shutdown({ graceMs: 100 });
    }
  });
});

describe('broken model files are named, never taken for missing ones', () => {
  function brokenCopy(name: string, content: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'weft-broken-'));
    for (const f of readdirSync(tinyCode)) if (f !== name) symlinkSync(join(tinyCode, f), join(dir, f));
    writeFileSync(join(dir, name), content);
    return dir;
  }

  it.each([
    ['tokenizer.json', '{"model": '],
    ['tokenizer_config.json', '{"chat_template": '],
    ['generation_config.json', '{"temperature": 0.'],
  ])('a broken %s: createServer fails naming it', async (name, content) => {
    const dir = brokenCopy(name, content);
    await expect(createServer(llm, { modelDir: dir })).rejects.toThrow(new RegExp(`${name.replace('.', '\\.')}: (cannot read JSON|not valid JSON)`));
  });

  it('a directory whose tokenizer_config.json is broken: loading it (or, given an engine without a tokenizer, serving it) fails naming the file, never "no tokenizer.json"', async () => {
    const dir = brokenCopy('tokenizer_config.json', '{"eos_token": ');
    let broken: Awaited<ReturnType<typeof loadEngine>>;
    try {
      broken = await loadEngine(dir);
    } catch (e) {
      // The engine itself refuses it (loadTokenizerIfPresent).
      expect((e as Error).message).toMatch(/tokenizer_config\.json: cannot read JSON/);
      return;
    }
    try {
      await expect(createServer(broken, { modelDir: dir })).rejects.toThrow(/tokenizer_config\.json: cannot read JSON/);
    } finally {
      await broken.close();
    }
  });
});

describe('shutdown', () => {
  it('stops accepting, lets short requests finish, aborts long ones after the grace period', async () => {
    const s = await createServer(llm, { modelDir: tinyCode });
    const u = await s.listen({ port: 0 });
    const req = (max: number) =>
      fetch(`${u}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'def f', max_tokens: max, ignore_eos: true }) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as { choices: { finish_reason: string; text: string }[] } }),
      );
    const short = req(4);
    const long = req(1000);
    await waitFor(() => s.activeRequests === 2, 5000);
    const t0 = Date.now();
    const down = s.shutdown({ graceMs: 1500 });
    const [a, b, result] = await Promise.all([short, long, down]);
    expect(a.status).toBe(200);
    expect(a.body.choices[0]!.finish_reason).toBe('length');
    expect(b.status).toBe(200);
    expect(b.body.choices[0]!.finish_reason).toBe('abort');
    expect(result.aborted).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    await expect(fetch(`${u}/health`)).rejects.toThrow();
    await waitFor(() => llm.stats().running === 0, 5000);
    expect(llm.stats().kvBlocksUsed).toBe(0);
  });
});
