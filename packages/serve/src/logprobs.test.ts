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

describe('completions text_offset', () => {
  /** Each choice's text, tokens and text_offset put together from a stream's chunks. */
  async function streamed(body: Record<string, unknown>): Promise<[string, string[], number[]][]> {
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
    const out: [string, string[], number[]][] = [];
    for (const f of (await res.text()).split('\n\n')) {
      if (!f.startsWith('data: {')) continue;
      for (const c of (JSON.parse(f.slice(6)) as Json).choices as Json[]) {
        const e = (out[c.index] ??= ['', [], []]);
        e[0] += c.text;
        if (c.logprobs) {
          e[1].push(...(c.logprobs.tokens as string[]));
          e[2].push(...(c.logprobs.text_offset as number[]));
        }
      }
    }
    return out;
  }

  it('a stream gives the offsets the whole response gives, also while a stop string holds text back (vLLM: test_completion_text_offset)', async () => {
    let heldBack = 0;
    for (let seed = 0; seed < 8; seed++) {
      const req = { prompt: 'def f(x):\n', max_tokens: 24, temperature: 1, seed, logprobs: 1, n: 2, stop: ['\n\n', 'ret', ' = '] };
      const whole = ((await post('/v1/completions', req)).choices as Json[]).map((c): [string, string[], number[]] => [c.text, c.logprobs.tokens, c.logprobs.text_offset]);
      expect(await streamed(req), `seed ${seed}`).toEqual(whole);
      // Offsets are the tokens' strings laid end to end from 0.
      for (const [, tokens, offsets] of whole) {
        expect(offsets).toEqual(tokens.map((_, i) => tokens.slice(0, i).join('').length));
        if (tokens.join('').length > 0 && whole.some(([text, t]) => text.length < t.join('').length)) heldBack++;
      }
    }
    // Some answers ended on a stop string: their tokens run past their text (what the stream held back).
    expect(heldBack).toBeGreaterThan(0);
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
