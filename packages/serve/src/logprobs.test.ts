/**
 * Logprobs as OpenAI defines them, from a real server over real ranks of
 * weft-tiny-code (byte-level BPE): completions' `top_logprobs` always holds
 * the sampled token ("up to logprobs + 1" entries; `logprobs: 0` gave `{}`),
 * and chat's `bytes` are a token's own bytes, so the bytes of the tokens of
 * "😀é" put together are its UTF-8 (each of those tokens alone decodes to
 * U+FFFD, whose bytes [239, 191, 189] were sent before, as vLLM sends them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { loadEngine, tinyCode } from './test-support/engine.js';

let llm: Awaited<ReturnType<typeof loadEngine>>;
let server: WeftServer;
let url: string;

beforeAll(async () => {
  llm = await loadEngine(tinyCode);
  server = await createServer(llm, { modelDir: tinyCode });
  url = await server.listen({ port: 0 });
});

afterAll(async () => {
  await server?.shutdown({ graceMs: 200 });
  await llm?.close();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function post(path: string, body: unknown): Promise<Json> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
}

describe('completions logprobs', () => {
  it('logprobs: 0 lists the sampled token alone in top_logprobs (OpenAI, vLLM); logprobs: 2 at most 3 entries, the sampled one among them', async () => {
    const zero = (await post('/v1/completions', { prompt: 'def f(x):', max_tokens: 6, temperature: 1, seed: 4, logprobs: 0 })).choices[0].logprobs;
    expect(zero.tokens).toHaveLength(6);
    zero.tokens.forEach((t: string, i: number) => expect(zero.top_logprobs[i]).toEqual({ [t]: zero.token_logprobs[i] }));
    const two = (await post('/v1/completions', { prompt: 'def f(x):', max_tokens: 6, temperature: 1, seed: 4, logprobs: 2 })).choices[0].logprobs;
    expect(two.tokens).toEqual(zero.tokens);
    two.tokens.forEach((t: string, i: number) => {
      expect(Object.keys(two.top_logprobs[i]).length).toBeGreaterThanOrEqual(2);
      expect(Object.keys(two.top_logprobs[i]).length).toBeLessThanOrEqual(3);
      expect(two.top_logprobs[i][t]).toBe(two.token_logprobs[i]);
    });
  });
});

describe('chat logprobs bytes', () => {
  it("the bytes of the tokens of '😀é', each sampled alone, put together are its UTF-8", async () => {
    const text = '😀é';
    const { tokens } = (await post('/tokenize', { prompt: text, add_special_tokens: false })) as { tokens: number[] };
    expect(tokens.length).toBeGreaterThan(2);
    const all: number[] = [];
    for (const id of tokens) {
      const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 1, temperature: 0, logit_bias: { [id]: 100 }, logprobs: true });
      const [lp] = r.choices[0].logprobs.content as { token: string; bytes: number[]; top_logprobs: { token: string; bytes: number[] }[] }[];
      expect(lp!.token).toBe('\uFFFD');
      all.push(...lp!.bytes);
    }
    expect(Buffer.from(all).toString('utf8')).toBe(text);
  });

  it('a token whose text is whole keeps the UTF-8 of its text', async () => {
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 });
    for (const lp of r.choices[0].logprobs.content as { token: string; bytes: number[]; top_logprobs: { token: string; bytes: number[] }[] }[]) {
      expect(lp.bytes).toEqual([...Buffer.from(lp.token, 'utf8')]);
      for (const t of lp.top_logprobs) if (!t.token.includes('\uFFFD')) expect(t.bytes).toEqual([...Buffer.from(t.token, 'utf8')]);
    }
  });
});

describe('chat top_logprobs without logprobs', () => {
  it('top_logprobs: 0 without logprobs serves with no logprobs (vLLM); a positive one is a 400 naming it', async () => {
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2, top_logprobs: 0 });
    expect(r.choices[0].logprobs).toBeNull();
    const bad = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 2, top_logprobs: 2 }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe('top_logprobs');
  });
});
