/**
 * Logprobs as OpenAI defines them, from a real server over real ranks of
 * weft-tiny-code (byte-level BPE): completions' `top_logprobs` always holds
 * the sampled token ("up to logprobs + 1" entries; `logprobs: 0` gave `{}`),
 * and chat's `bytes` are a token's own bytes, so the bytes of the tokens of
 * "😀é" put together are its UTF-8 (each of those tokens alone decodes to
 * U+FFFD, whose bytes [239, 191, 189] were sent before, as vLLM sends them).
 * `echo` with `logprobs`, as vLLM answers it and as eval harnesses (lm-evaluation-harness's loglikelihood) read
 * it: the prompt's own tokens lead the lists (the first with `null`), each prompt token's logprob is Hugging Face's,
 * `max_tokens: 0` returns the prompt alone, and the stream adds up to the whole response.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { loadEngine, tinyCode } from './test-support/engine.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface HfCase {
  prompt: string;
  input_ids: number[];
  logits_shape: [number, number];
  logits: number[];
}
const [hf] = (JSON.parse(readFileSync(join(tinyCode, 'expected.json'), 'utf8')) as { cases: HfCase[] }).cases;

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

async function postCompletions(body: unknown, status = 200): Promise<Json> {
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'weft-tiny-code', ...(body as object) }) });
  const json = (await res.json()) as Json;
  expect(res.status, JSON.stringify(json)).toBe(status);
  return json;
}

/** The stream's chunks (SSE `data:` lines before `[DONE]`). */
async function stream(body: unknown): Promise<Json[]> {
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'weft-tiny-code', stream: true, ...(body as object) }) });
  expect(res.status).toBe(200);
  const lines = (await res.text()).split('\n').filter((l) => l.startsWith('data: '));
  expect(lines.at(-1)).toBe('data: [DONE]');
  return lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)) as Json);
}

/** Hugging Face's log softmax at `id` of row `t`. */
function hfLogprob(t: number, id: number): number {
  const vocab = hf!.logits_shape[1];
  const row = hf!.logits.slice(t * vocab, (t + 1) * vocab);
  const max = Math.max(...row);
  return row[id]! - max - Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
}

/** text_offset: where each token's string starts, the strings laid end to end from 0 (vLLM). */
function expectOffsetsFromZero(lp: Json): void {
  let at = 0;
  lp.tokens.forEach((tok: string, i: number) => {
    expect(lp.text_offset[i], `text_offset ${i}`).toBe(at);
    at += tok.length;
  });
}

describe('echo with logprobs (prompt logprobs)', () => {
  it('max_tokens 0: the prompt back, each token after the first with its Hugging Face logprob, nothing generated', async () => {
    const r = await postCompletions({ prompt: hf!.prompt, max_tokens: 0, echo: true, logprobs: 2 });
    const [c] = r.choices;
    expect(c.text).toBe(hf!.prompt);
    expect(c.finish_reason).toBe('length');
    expect(r.usage).toMatchObject({ prompt_tokens: hf!.input_ids.length, completion_tokens: 0 });
    const lp = c.logprobs;
    expect(lp.tokens).toEqual(hf!.input_ids.map((id) => llm.tokenizer!.decode([id])));
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    for (let t = 1; t < hf!.input_ids.length; t++) {
      expect(Math.abs(lp.token_logprobs[t] - hfLogprob(t - 1, hf!.input_ids[t]!)), `token ${t}`).toBeLessThanOrEqual(2e-3);
      const top = Object.entries(lp.top_logprobs[t] as Record<string, number>);
      expect(top.length).toBeGreaterThanOrEqual(2);
      expect(top.length).toBeLessThanOrEqual(3);
      expect(lp.top_logprobs[t][lp.tokens[t]]).toBe(lp.token_logprobs[t]);
    }
    expectOffsetsFromZero(lp);
  });

  it('max_tokens 4: the prompt entries, then the same generated entries a request without echo gets', async () => {
    const base = { prompt: hf!.prompt, max_tokens: 4, temperature: 0, logprobs: 1, ignore_eos: true };
    const [echoed, plain, promptOnly] = await Promise.all([postCompletions({ ...base, echo: true }), postCompletions(base), postCompletions({ ...base, max_tokens: 0, echo: true })]);
    const e = echoed.choices[0];
    const L = hf!.input_ids.length;
    expect(e.text).toBe(hf!.prompt + plain.choices[0].text);
    expect(e.logprobs.tokens).toEqual([...promptOnly.choices[0].logprobs.tokens, ...plain.choices[0].logprobs.tokens]);
    // To float32 rounding: the three requests share steps, and a batch's rows change a matmul's order.
    const near = (xs: (number | null)[]) => xs.map((x) => (x === null ? null : expect.closeTo(x, 4)));
    expect(e.logprobs.token_logprobs.slice(0, L)).toEqual(near(promptOnly.choices[0].logprobs.token_logprobs));
    expect(e.logprobs.token_logprobs.slice(L)).toEqual(near(plain.choices[0].logprobs.token_logprobs));
    expectOffsetsFromZero(e.logprobs);
    expect(echoed.usage.completion_tokens).toBe(4);
  });

  it('streamed, the chunks add up to the whole response (text, tokens, logprobs, offsets), max_tokens 0 too', async () => {
    for (const max_tokens of [0, 5]) {
      const body = { prompt: hf!.prompt, max_tokens, temperature: 0, echo: true, logprobs: 1, ignore_eos: true };
      const whole = (await postCompletions(body)).choices[0];
      const chunks = await stream(body);
      const parts = chunks.flatMap((c) => c.choices).filter((c: Json) => c.logprobs);
      expect(parts.map((c: Json) => c.text).join('')).toBe(whole.text);
      for (const k of ['tokens', 'token_logprobs', 'text_offset'] as const) expect(parts.flatMap((c: Json) => c.logprobs[k]), `${k}, max_tokens ${max_tokens}`).toEqual(whole.logprobs[k]);
      expect(chunks.flatMap((c) => c.choices).at(-1).finish_reason).toBe('length');
    }
  });

  it('token-id prompts and n: every choice leads with the prompt; max_tokens 0 without echo is refused by name', async () => {
    const r = await postCompletions({ prompt: [hf!.input_ids, hf!.input_ids.slice(0, 4)], n: 2, max_tokens: 0, echo: true, logprobs: 0 });
    expect(r.choices).toHaveLength(4);
    expect(r.choices.map((c: Json) => c.logprobs.tokens.length)).toEqual([hf!.input_ids.length, hf!.input_ids.length, 4, 4]);
    expect(r.choices[2].logprobs.token_logprobs).toEqual(r.choices[0].logprobs.token_logprobs.slice(0, 4).map((x: number | null, i: number) => (i === 0 ? null : expect.closeTo(x!, 5))));
    const bad = await postCompletions({ prompt: hf!.prompt, max_tokens: 0 }, 400);
    expect(bad.error.param).toBe('max_tokens');
    expect(bad.error.message).toMatch(/0 only with echo/);
  });
});
