/**
 * What a client sees (issue 17, section 4), against a real server over real
 * ranks of weft-tiny-code: answers that end on EOS (not on a token limit)
 * carry no end-of-text and vLLM's stop_reason; every field of the table is
 * either implemented (and does what vLLM does) or refused with a 400 naming
 * it; stream framing (a final chunk with an empty delta and the finish
 * reason), system_fingerprint, cached tokens; CORS as vLLM answers it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIELDS } from './fields.js';
import { createServer, type ServeOptions, type WeftServer } from './server.js';
import { loadEngine, repoRoot, tinyCode, tinyCodeCases } from './test-support/engine.js';

let llm: Awaited<ReturnType<typeof loadEngine>>;
let url: string;
const servers: WeftServer[] = [];
const cases = tinyCodeCases();
/** A seeded request the model ends by itself (EOS, id 1) well before max_tokens. */
const EOS_REQ = { prompt: '\n', max_tokens: 40, temperature: 1, seed: 27 };

beforeAll(async () => {
  llm = await loadEngine(tinyCode);
  url = await serve();
});

afterAll(async () => {
  for (const s of servers) await s.shutdown({ graceMs: 200 });
  await llm?.close();
});

async function serve(opts: ServeOptions = {}): Promise<string> {
  const s = await createServer(llm, { modelDir: tinyCode, ...opts });
  servers.push(s);
  return s.listen({ port: 0 });
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function post(path: string, body: unknown, base = url): Promise<{ status: number; json: Json; text: string }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text);
  } catch {
    /* SSE */
  }
  return { status: res.status, json, text };
}

/** The data frames of an SSE body, parsed, without [DONE]. */
function frames(text: string): Json[] {
  const out = text.split('\n\n').filter((f) => f.startsWith('data: ') && f !== 'data: [DONE]');
  return out.map((f) => JSON.parse(f.slice(6)));
}

describe('answers that end by themselves (EOS)', () => {
  it('completions: finish_reason stop, stop_reason the EOS id, no end-of-text in the text; a stream says the same', async () => {
    const r = await post('/v1/completions', { ...EOS_REQ, return_token_ids: true });
    const c = r.json.choices[0];
    expect(c.finish_reason).toBe('stop');
    expect(c.token_ids.length).toBeLessThan(40);
    expect(c.token_ids.at(-1)).toBe(1);
    expect(c.stop_reason).toBe(1);
    expect(c.text).not.toContain('<|end_of_text|>');
    expect(c.text).toBe(llm.tokenizer!.decode(c.token_ids.slice(0, -1), { skipSpecialTokens: true }));
    const s = await post('/v1/completions', { ...EOS_REQ, stream: true });
    const fs = frames(s.text);
    const text = fs.flatMap((f) => f.choices.map((x: Json) => x.text)).join('');
    expect(text).toBe(c.text);
    // The finish comes alone, in a last chunk with empty text, as OpenAI and llama.cpp send it.
    const last = fs.at(-1)!.choices[0];
    expect(last).toMatchObject({ text: '', finish_reason: 'stop', stop_reason: 1 });
    expect(fs.slice(0, -1).every((f) => f.choices[0].finish_reason === null)).toBe(true);
  });

  it('chat: the same, with an empty delta in the finishing chunk', async () => {
    // Seed 41 ends on EOS after 18 tokens (found by running seeds 0..59 through LLM.generate).
    const body = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 60, temperature: 1, seed: 41 };
    const r = await post('/v1/chat/completions', body);
    const c = r.json.choices[0];
    expect(r.json.usage.completion_tokens).toBe(19);
    expect(c.finish_reason).toBe('stop');
    expect(c.stop_reason).toBe(1);
    expect(c.message.content).not.toContain('<|end_of_text|>');
    const fs = frames((await post('/v1/chat/completions', { ...body, stream: true })).text);
    expect(fs[0]!.choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(fs.map((f) => f.choices[0]?.delta?.content ?? '').join('')).toBe(c.message.content);
    expect(fs.at(-1)!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop', stop_reason: 1 });
  });
});

describe('stop_reason, fingerprint, cached tokens', () => {
  it('a stop string: stop_reason is the string; include_stop_str_in_output keeps it; at a length: null', async () => {
    const c = cases[2]!;
    const cut = await post('/v1/completions', { prompt: c.prompt, temperature: 0, max_tokens: 32, stop: ['__init__'] });
    expect(cut.json.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: '__init__', text: c.greedy_text.slice(0, c.greedy_text.indexOf('__init__')) });
    const kept = await post('/v1/completions', { prompt: c.prompt, temperature: 0, max_tokens: 32, stop: ['__init__'], include_stop_str_in_output: true });
    expect(kept.json.choices[0].text).toBe(c.greedy_text.slice(0, c.greedy_text.indexOf('__init__') + '__init__'.length));
    const len = await post('/v1/completions', { prompt: c.prompt, temperature: 0, max_tokens: 3, ignore_eos: true });
    expect(len.json.choices[0]).toMatchObject({ finish_reason: 'length', stop_reason: null });
    expect(len.json.system_fingerprint).toMatch(/^fp_weft_[0-9a-f]{10}$/);
  });

  it('usage.prompt_tokens_details.cached_tokens counts the prefix cache; every stream chunk has system_fingerprint', async () => {
    const prompt = Array.from({ length: 48 }, (_, i) => 100 + i);
    const first = await post('/v1/completions', { prompt, max_tokens: 2, temperature: 0 });
    expect(first.json.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const again = await post('/v1/completions', { prompt, max_tokens: 2, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const fs = frames(again.text);
    // Whole 16-token blocks, never the whole prompt (the last token is always computed).
    expect(fs.at(-1)!.usage.prompt_tokens_details.cached_tokens).toBe(32);
    expect(fs.every((f) => f.system_fingerprint === first.json.system_fingerprint)).toBe(true);
  });
});

describe('implemented fields do what vLLM does', () => {
  const c = cases[1]!;
  it('logit_bias: -100 bans the greedy token; +100 forces a token', async () => {
    const banned = await post('/v1/completions', { prompt: c.prompt, temperature: 0, max_tokens: 1, logit_bias: { [c.greedy[0]!]: -100 }, return_token_ids: true });
    expect(banned.json.choices[0].token_ids[0]).not.toBe(c.greedy[0]);
    const forced = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], temperature: 0, max_tokens: 4, logit_bias: { 42: 100 }, return_token_ids: true });
    expect(forced.json.choices[0].token_ids).toEqual([42, 42, 42, 42]);
    const bad = await post('/v1/completions', { prompt: c.prompt, logit_bias: { 99999: 1 } });
    expect(bad.json.error.param).toBe('logit_bias');
  });

  it('min_tokens: no EOS before it', async () => {
    const free = await post('/v1/completions', { ...EOS_REQ, return_token_ids: true });
    const k = free.json.choices[0].token_ids.length;
    const held = await post('/v1/completions', { ...EOS_REQ, min_tokens: k + 3, return_token_ids: true });
    expect(held.json.choices[0].token_ids.length).toBeGreaterThanOrEqual(k + 3);
    expect(held.json.choices[0].token_ids.slice(0, k + 2)).not.toContain(1);
  });

  it('best_of: the one of highest cumulative logprob among the seeded candidates; refused with stream', async () => {
    const req = { prompt: c.prompt, temperature: 1, seed: 5, max_tokens: 6, ignore_eos: true, logprobs: 0 };
    const all = await post('/v1/completions', { ...req, n: 3 });
    const sums = all.json.choices.map((x: Json) => x.logprobs.token_logprobs.reduce((a: number, b: number) => a + b, 0));
    const best = all.json.choices[sums.indexOf(Math.max(...sums))].text;
    const one = await post('/v1/completions', { ...req, n: 1, best_of: 3 });
    expect(one.json.choices).toHaveLength(1);
    expect(one.json.choices[0].text).toBe(best);
    expect((await post('/v1/completions', { ...req, best_of: 3, stream: true })).json.error.param).toBe('best_of');
  });

  it('skip_special_tokens: false shows special tokens in the text; default leaves them out', async () => {
    const req = { prompt: c.prompt, temperature: 0, max_tokens: 2, ignore_eos: true, logit_bias: { 0: 100 } };
    expect((await post('/v1/completions', req)).json.choices[0].text).toBe('');
    expect((await post('/v1/completions', { ...req, skip_special_tokens: false })).json.choices[0].text).toBe('<|begin_of_text|><|begin_of_text|>');
  });

  // (weft-tiny-code's tokenizer adds no BOS of its own: add_special_tokens is passed through, not visible here.)
  it('add_special_tokens, user, stream_options.continuous_usage_stats', async () => {
    const withBos = await post('/v1/completions', { prompt: c.prompt, max_tokens: 1, return_token_ids: true, user: 'someone' });
    expect(withBos.status).toBe(200);
    expect(withBos.json.choices[0].prompt_token_ids).toEqual(c.input_ids);
    const plain = await post('/v1/completions', { prompt: c.prompt, max_tokens: 1, return_token_ids: true, add_special_tokens: false });
    expect(plain.json.choices[0].prompt_token_ids).toEqual(llm.tokenizer!.encode(c.prompt, { addSpecialTokens: false }));
    const s = await post('/v1/completions', { prompt: c.prompt, max_tokens: 4, ignore_eos: true, stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } });
    const counts = frames(s.text).map((f) => f.usage.completion_tokens);
    expect(counts.at(-1)).toBe(4);
    expect([...counts].sort((a, b) => a - b)).toEqual(counts);
    // As vLLM (test_completion_stream_options): continuous_usage_stats without include_usage sends no usage.
    const alone = await post('/v1/completions', { prompt: c.prompt, max_tokens: 4, ignore_eos: true, stream: true, stream_options: { include_usage: false, continuous_usage_stats: true } });
    expect(frames(alone.text).every((f) => f.usage === undefined || f.usage === null)).toBe(true);
  });

  it('response_format text is what every answer is; json_object is refused', async () => {
    expect((await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2, response_format: { type: 'text' } })).status).toBe(200);
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2, response_format: { type: 'json_object' } });
    expect(r.status).toBe(400);
    expect(r.json.error.param).toBe('response_format');
  });
});

describe('every other field is refused with a 400 naming it', () => {
  const base = { completions: { prompt: 'def f', max_tokens: 1 }, chat: { messages: [{ role: 'user', content: 'x' }], max_tokens: 1 } };
  const refused = Object.entries(FIELDS).filter(([, r]) => r.status === 'refused');
  it.each(refused)('%s', async (field, rule) => {
    for (const route of rule.routes) {
      const r = await post(route === 'chat' ? '/v1/chat/completions' : '/v1/completions', { ...base[route], [field]: { asks: 'for something' } });
      expect(r.status, `${route} ${field}`).toBe(400);
      expect(r.json.error.param).toBe(field);
      // Absent or null asks for nothing.
      expect((await post(route === 'chat' ? '/v1/chat/completions' : '/v1/completions', { ...base[route], [field]: null })).status).toBe(200);
    }
  });

  it('docs/serve.md lists every field of the table with its status', () => {
    const doc = readFileSync(join(repoRoot, 'docs/serve.md'), 'utf8');
    for (const [field, rule] of Object.entries(FIELDS)) expect(doc, field).toMatch(new RegExp(`^\\| \`${field}\` \\| [a-z]+ \\| ${rule.status}`, 'm'));
  });

  it('made-up fields, and fields of the other route', async () => {
    for (const [path, body] of [
      ['/v1/completions', { ...base.completions, temprature: 0 }],
      ['/v1/completions', { ...base.completions, messages: [] }],
      ['/v1/chat/completions', { ...base.chat, prompt: 'x' }],
      ['/v1/chat/completions', { ...base.chat, tools: [{ type: 'function', function: { name: 'f' } }] }],
    ] as const) {
      const r = await post(path, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(Object.keys(body)).toContain(r.json.error.param);
    }
  });
});

describe('CORS as vLLM answers it', () => {
  it('default: any origin; the preflight is answered before the API key is asked for', async () => {
    const u = await serve({ apiKey: 'k' });
    const pre = await fetch(`${u}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(pre.status).toBe(200);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    expect(pre.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    const res = await fetch(`${u}/v1/models`, { headers: { origin: 'https://app.example', authorization: 'Bearer k' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    // A refused request still carries the header, so the page can read the 401.
    expect((await fetch(`${u}/v1/models`, { headers: { origin: 'https://app.example' } })).headers.get('access-control-allow-origin')).toBe('*');
  });

  it('--allowed-origins, --allowed-methods, --allowed-headers, --allow-credentials', async () => {
    const u = await serve({ allowedOrigins: ['https://ok.example'], allowedMethods: ['GET', 'POST'], allowedHeaders: ['authorization'], allowCredentials: true });
    const pre = (origin: string, method = 'POST', headers = 'authorization') =>
      fetch(`${u}/v1/completions`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers } });
    const ok = await pre('https://ok.example');
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://ok.example');
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    expect(ok.headers.get('vary')).toContain('Origin');
    expect((await pre('https://evil.example')).status).toBe(400);
    expect((await pre('https://ok.example', 'DELETE')).status).toBe(400);
    expect((await pre('https://ok.example', 'POST', 'x-secret')).status).toBe(400);
    expect((await fetch(`${u}/health`, { headers: { origin: 'https://evil.example' } })).headers.get('access-control-allow-origin')).toBeNull();
  });
});
