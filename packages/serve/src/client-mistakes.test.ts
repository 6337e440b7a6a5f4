/**
 * Mistakes clients make, and the answer each gets from a real server over
 * real ranks (weft-tiny-code; llama-tiny for a model without tokenizer.json):
 * every message names the field as the HTTP API spells it, a body sent
 * without `Content-Type: application/json` (curl's bare `-d`, a browser's
 * text/plain fetch) is told so, and a stop string a tokenizer-less model can
 * never match is refused rather than ignored.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { llamaTiny, loadEngine, tinyCode } from './test-support/engine.js';

type Engine = Awaited<ReturnType<typeof loadEngine>>;
const engines: Engine[] = [];
const servers: WeftServer[] = [];
let url: string;
let noTokenizerUrl: string;

async function serve(dir: string): Promise<string> {
  const llm = await loadEngine(dir);
  engines.push(llm);
  const s = await createServer(llm, { modelDir: dir });
  servers.push(s);
  return s.listen({ port: 0 });
}

beforeAll(async () => {
  url = await serve(tinyCode);
  noTokenizerUrl = await serve(llamaTiny);
});

afterAll(async () => {
  for (const s of servers) await s.shutdown({ graceMs: 200 });
  for (const e of engines) await e.close();
});

async function send(base: string, body: string, contentType?: string): Promise<{ status: number; error: { message: string; param: string | null; type: string } }> {
  const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: contentType ? { 'content-type': contentType } : {}, body });
  return { status: res.status, error: ((await res.json()) as { error: { message: string; param: string | null; type: string } }).error };
}

describe('messages name fields as the HTTP API spells them', () => {
  it('min_tokens above max_tokens: the engine check reaches the client as min_tokens / max_tokens, not minTokens / maxTokens', async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
    const err = await client.completions.create({ model: 'weft-tiny-code', prompt: 'x', max_tokens: 2, min_tokens: 5 } as OpenAI.CompletionCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe('min_tokens');
    expect(e.message).toContain('min_tokens must be at most max_tokens (2), got 5');
    expect(e.message).not.toMatch(/[a-z][A-Z]/);
  });
});

describe("what vLLM's own API tests match on", () => {
  it('a token id past the vocabulary: "out of vocabulary" (test_out_of_vocab_token_ids), naming the id and the size', async () => {
    const r = await send(url, JSON.stringify({ prompt: [999999], max_tokens: 5 }), 'application/json');
    expect(r.status).toBe(400);
    expect(r.error.message).toMatch(/token id 999999 is out of vocabulary \(the vocabulary has 4096 tokens/);
    const bias = await send(url, JSON.stringify({ prompt: 'x', max_tokens: 2, logit_bias: { 4097: 1 } }), 'application/json');
    expect(bias.error.message).toMatch(/4097 is out of vocabulary.*4096/);
  });

  it('logit_bias keys that are not token ids are all named at once (test_chat_logit_bias_multiple_non_integer_keys)', async () => {
    const r = await send(url, JSON.stringify({ prompt: 'x', max_tokens: 2, logit_bias: { bad1: 50, 7: 1, bad2: 20 } }), 'application/json');
    expect(r.status).toBe(400);
    expect(r.error).toMatchObject({ param: 'logit_bias', message: 'logit_bias: "bad1", "bad2" are not token ids' });
  });
});

describe('a body that is not sent as JSON', () => {
  it("curl's bare -d (application/x-www-form-urlencoded): 415 saying to send Content-Type: application/json", async () => {
    const r = await send(url, '{"prompt": "x", "max_tokens": 2}', 'application/x-www-form-urlencoded');
    expect(r.status).toBe(415);
    expect(r.error.message).toContain('Content-Type: application/json');
    expect(r.error.type).toBe('invalid_request_error');
  });

  it('a JSON object sent as text/plain: 400 saying it came as text, not that it is not an object', async () => {
    const r = await send(url, '{"prompt": "x", "max_tokens": 2}', 'text/plain');
    expect(r.status).toBe(400);
    expect(r.error.message).toBe('the request body must be a JSON object sent with Content-Type: application/json (this one came as text)');
    // The same body as JSON is served.
    const ok = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": "x", "max_tokens": 2}' });
    expect(ok.status).toBe(200);
  });
});

describe('a model without tokenizer.json', () => {
  it('stop strings are refused naming stop (they could never match); stop_token_ids serve', async () => {
    const r = await send(noTokenizerUrl, JSON.stringify({ prompt: [5, 6, 7], max_tokens: 4, stop: ['x'] }), 'application/json');
    expect(r.status).toBe(400);
    expect(r.error.param).toBe('stop');
    expect(r.error.message).toMatch(/without a tokenizer.*stop_token_ids/);
    const ids = await fetch(`${noTokenizerUrl}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: [5, 6, 7], max_tokens: 4, stop_token_ids: [3], stop: [] }) });
    expect(ids.status).toBe(200);
  });
});
