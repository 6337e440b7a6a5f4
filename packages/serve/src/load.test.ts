/**
 * Load through the official client: 64 concurrent streaming clients, 4
 * requests each, greedy and seeded sampling mixed. None is lost, each output
 * equals the same request run alone, the KV blocks all come back, and the
 * JS heap stays flat from one round to the next. (RSS grows ~30-40 MiB per
 * 256 requests with the tensorflow backend in-process too, without HTTP:
 * native memory of the ranks, bounded here, not the server's.)
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { loadEngine, tinyCode } from './test-support/engine.js';

let llm: Awaited<ReturnType<typeof loadEngine>>;
let server: WeftServer;
let client: OpenAI;

beforeAll(async () => {
  llm = await loadEngine(tinyCode);
  server = await createServer(llm, { modelDir: tinyCode });
  client = new OpenAI({ baseURL: `${await server.listen({ port: 0 })}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
});

afterAll(async () => {
  await server?.shutdown({ graceMs: 500 });
  await llm?.close();
});

const PROMPTS = ['def fibonacci(n):\n', 'import numpy as np\n', 'class Tensor', '    return ', 'for i in range(', '# compute the mean\n', 'def __init__(self', 'if __name__ ==', 'from typing import', 'async def fetch(url'];

/** 16 distinct requests; client c sends specs (4c + k) mod 16. */
const SPECS = Array.from({ length: 16 }, (_, i) => ({
  prompt: PROMPTS[i % PROMPTS.length]!,
  max_tokens: 8 + ((i * 5) % 9),
  ignore_eos: true,
  ...(i % 2 ? { temperature: 0.8, top_p: 0.95, seed: 100 + i } : { temperature: 0 }),
}));

async function streamed(spec: (typeof SPECS)[number]): Promise<{ ids: number[]; text: string; finish: string | null }> {
  const stream = await client.completions.create({ model: 'weft-tiny-code', ...spec, stream: true, return_token_ids: true } as unknown as OpenAI.CompletionCreateParamsStreaming);
  const ids: number[] = [];
  let text = '';
  let finish: string | null = null;
  for await (const ch of stream) {
    for (const c of ch.choices) {
      text += c.text;
      ids.push(...((c as unknown as { token_ids?: number[] }).token_ids ?? []));
      finish = c.finish_reason ?? finish;
    }
  }
  return { ids, text, finish };
}

describe('64 concurrent streaming clients × 4 requests', () => {
  it('none lost, each equal to the request alone, KV blocks back to zero, JS heap flat (RSS bounded)', async () => {
    const alone = [];
    for (const s of SPECS) alone.push(await streamed(s));
    const round = () =>
      Promise.all(
        Array.from({ length: 64 }, async (_, c) => {
          const outs = [];
          for (let k = 0; k < 4; k++) outs.push({ spec: (4 * c + k) % 16, out: await streamed(SPECS[(4 * c + k) % 16]!) });
          return outs;
        }),
      );
    const rss: number[] = [];
    const heap: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = Date.now();
      const results = (await round()).flat();
      expect(results).toHaveLength(256);
      for (const { spec, out } of results) {
        expect(out.ids, `spec ${spec}`).toEqual(alone[spec]!.ids);
        expect(out.text).toBe(alone[spec]!.text);
        expect(out.ids).toHaveLength(SPECS[spec]!.max_tokens);
        expect(out.finish).toBe('length');
      }
      const s = llm.stats();
      expect(s.running + s.waiting).toBe(0);
      expect(s.kvBlocksUsed).toBe(0);
      expect(server.activeRequests).toBe(0);
      globalThis.gc?.();
      const m = process.memoryUsage();
      rss.push(m.rss);
      heap.push(m.heapUsed);
      console.log(`round ${r}: 256 requests in ${Date.now() - t0} ms, rss ${(m.rss / 2 ** 20).toFixed(0)} MiB, heap ${(m.heapUsed / 2 ** 20).toFixed(1)} MiB`);
    }
    // Later rounds reuse what the first allocated: the JS heap keeps nothing per request. RSS (this process
    // also holds the client and the ranks' native buffers) may drift by allocator slack, not by a per-request leak.
    expect(heap[2]! - heap[1]!).toBeLessThan(8 * 2 ** 20);
    expect(rss[2]! - rss[1]!).toBeLessThan(96 * 2 ** 20);
  }, 600_000);
});
