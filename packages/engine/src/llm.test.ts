/**
 * The front end on the embedded model (a real tokenizer): streams add up to
 * generate's text, n completions, seeded sampling independent of the batch
 * and the layout, logprobs, stop strings, EOS ids, health and stats.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEosTokenIds } from './eos.js';
import { LLM, type StreamEvent } from './llm.js';
import { resolveArchitecture } from './registry.js';

const dir = fileURLToPath(new URL('../../../models/weft-tiny-code', import.meta.url));
const PROMPT = 'def forward(self, hidden_states):\n';
/** A full GC of this thread (the flag is read when a context is made). */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const SAMPLED = { temperature: 0.9, topP: 0.95, topK: 50, seed: 4242, maxTokens: 12, ignoreEos: true };

describe('LLM front end (weft-tiny-code)', () => {
  let llm: LLM;
  beforeAll(async () => {
    llm = await LLM.load(dir);
  });
  afterAll(async () => {
    await llm?.close();
  });

  it('knows its limits and EOS ids', () => {
    expect(llm.maxModelLen).toBe(1024);
    expect(llm.eosTokenIds).toEqual([1]);
    expect(llm.tokenizer).not.toBeNull();
    expect(llm.health()).toEqual({ ok: true });
  });

  it('stream deltas add up to generate (text and ids); the last event carries the finish reason', async () => {
    const [g] = await llm.generate([PROMPT], { maxTokens: 20 });
    const evs: StreamEvent[] = [];
    for await (const ev of llm.stream(PROMPT, { maxTokens: 20 })) evs.push(ev);
    expect(evs.map((e) => e.text).join('')).toBe(g!.text);
    expect(evs.flatMap((e) => e.tokenIds)).toEqual(g!.tokenIds);
    expect(evs.at(-1)!.finishReason).toBe(g!.finishReason);
    expect(evs.slice(0, -1).every((e) => e.finishReason === null)).toBe(true);
  });

  it('a stop string ends the text before it; stop token ids end with stopReason', async () => {
    const [g] = await llm.generate([PROMPT], { maxTokens: 32, ignoreEos: true });
    const stop = g!.text.slice(8, 12);
    const [s] = await llm.generate([PROMPT], { maxTokens: 32, ignoreEos: true, stop: [stop] });
    expect(s!.finishReason).toBe('stop');
    expect(s!.stopReason).toBe(stop);
    expect(s!.text).toBe(g!.text.slice(0, g!.text.indexOf(stop)));
    const [t] = await llm.generate([PROMPT], { maxTokens: 32, ignoreEos: true, stopTokenIds: [g!.tokenIds[3]!] });
    expect(t!.tokenIds).toEqual(g!.tokenIds.slice(0, g!.tokenIds.indexOf(g!.tokenIds[3]!) + 1));
    expect(t!.stopReason).toBe(g!.tokenIds[3]);
  });

  it('a seeded request draws the same tokens alone, in a batch, and at tp 2', async () => {
    const [alone] = await llm.generate([PROMPT], SAMPLED);
    const batch = await llm.generate(['import torch\n', PROMPT, 'class A:\n'], [{ ...SAMPLED, seed: 1 }, SAMPLED, { temperature: 1, maxTokens: 5 }]);
    expect(batch[1]!.tokenIds).toEqual(alone!.tokenIds);
    const tp2 = await LLM.load(dir, { tp: 2 });
    try {
      expect((await tp2.generate([PROMPT], SAMPLED))[0]!.tokenIds).toEqual(alone!.tokenIds);
    } finally {
      await tp2.close();
    }
    // Sampling did sample: greedy differs somewhere.
    const [greedy] = await llm.generate([PROMPT], { maxTokens: 12, ignoreEos: true });
    expect(greedy!.tokenIds).not.toEqual(alone!.tokenIds);
  });

  it('n completions: each its own stream, the first also at the top level', async () => {
    const [o] = await llm.generate([PROMPT], { ...SAMPLED, n: 3 });
    expect(o!.outputs).toHaveLength(3);
    expect(o!.outputs!.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(o!.tokenIds).toEqual(o!.outputs![0]!.tokenIds);
    expect(new Set(o!.outputs!.map((c) => c.tokenIds.join())).size).toBeGreaterThan(1);
    const seen = new Set<number>();
    for await (const ev of llm.stream(PROMPT, { ...SAMPLED, n: 2 })) seen.add(ev.index);
    expect([...seen].sort()).toEqual([0, 1]);
  });

  it('logprobs: the sampled token first-class, top-k sorted, matching the logits', async () => {
    const [o] = await llm.generate([PROMPT], { maxTokens: 4, logprobs: 3, returnLogits: true });
    expect(o!.logprobs).toHaveLength(4);
    o!.logprobs!.forEach((lp, t) => {
      expect(lp.tokenId).toBe(o!.tokenIds[t]);
      expect(lp.top.map((x) => x.tokenId)[0]).toBe(lp.tokenId); // greedy: the best is the sampled one
      expect(lp.top[0]!.logprob).toBeGreaterThanOrEqual(lp.top[1]!.logprob);
      const row = o!.logits![t]!;
      const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
      expect(lp.logprob).toBeCloseTo(row[lp.tokenId]! - lse, 4);
    });
  });

  it('stats count tokens and blocks; nothing is held when idle', async () => {
    const before = llm.stats();
    // Two blocks of a long prompt are computed once, then shared.
    await llm.generate([PROMPT.repeat(6)], { maxTokens: 3, ignoreEos: true });
    await llm.generate([PROMPT.repeat(6)], { maxTokens: 3, ignoreEos: true });
    const after = llm.stats();
    expect(after.generationTokens - before.generationTokens).toBe(6);
    expect(after.promptTokens - before.promptTokens).toBeGreaterThan(0);
    expect(after.prefixCacheHits).toBeGreaterThan(before.prefixCacheHits);
    expect(after).toMatchObject({ running: 0, waiting: 0, kvBlocksUsed: 0 });
    expect(after.kvBlocksTotal).toBeGreaterThan(0);
  });

  it('1,000 requests at once and 3,000 more, then 4,000 more, leave live tensors, used blocks, heap and RSS flat', async () => {
    // The preallocated pools' pages become resident as blocks are first written: a small pool is all written by the first batch.
    await llm.resetScheduler({ numKvBlocks: 128 });
    const batch = (n: number) =>
      llm.generate(
        Array.from({ length: n }, (_, i) => [5 + (i % 50), 7, 9 + (i % 13)]),
        { maxTokens: 2, ignoreEos: true },
      );
    // RSS follows garbage collection, not only what is kept. Each sampled token leaves its logits row (vocab × 4
    // bytes) as a dead ArrayBuffer in the rank thread until V8 collects it, and the rank's malloc arena keeps the
    // high-water mark: RSS climbs ~50 MiB over the first ~3,000 requests and then stays flat, or swings by up to
    // ~90 MiB when the arena is reused (measured at c94ff73: a single reading 1,000 requests after 300 rose 64-73 MiB and
    // failed a 64 MiB bound ~2 runs in 5). Requests' objects sit in this thread's old space until a major GC. So:
    // 4,000 requests of warm-up, a full GC of this thread before each reading (its heap is then exact), and the
    // lowest RSS reading of the last four (of 500 requests each) against the lowest of the start and the first four:
    // a leak lifts every reading, a collection's timing only some.
    const reading = (): { rss: number; heap: number } => {
      gc();
      const m = process.memoryUsage();
      return { rss: m.rss, heap: m.heapUsed };
    };
    await batch(1000);
    const tensors = llm.tensorCounts.at(-1);
    for (let i = 0; i < 6; i++) await batch(500);
    const start = reading();
    const readings = [start];
    for (let i = 0; i < 8; i++) {
      await batch(500);
      readings.push(reading());
    }
    expect(llm.tensorCounts.at(-1)).toBe(tensors);
    expect(llm.tensorCounts.length).toBeLessThanOrEqual(1024);
    expect(llm.stats()).toMatchObject({ running: 0, waiting: 0, kvBlocksUsed: 0 });
    const low = (rs: typeof readings) => Math.min(...rs.map((r) => r.rss));
    const growth = (low(readings.slice(-4)) - low(readings.slice(0, 5))) / 2 ** 20;
    // This thread's heap after a full GC is exact: 4 MiB over 4,000 requests is 1 KiB a request.
    const heapGrowth = (readings.at(-1)!.heap - start.heap) / 2 ** 20;
    expect(heapGrowth, 'heap growth (MiB) after a full GC, over 4,000 more requests').toBeLessThan(4);
    // The halves' middles are 2,000 requests apart and the first half holds the start: a leak of 16 KiB a request fails.
    expect(growth, 'RSS growth (MiB) over 4,000 more requests, lowest readings').toBeLessThan(32);
    await llm.resetScheduler({ numKvBlocks: llm.numKvBlocks });
  });
});

describe('model directory', () => {
  it('the registry picks the model by config.json architectures, and names what it supports', () => {
    expect(resolveArchitecture(dir)).toBe('LlamaForCausalLM');
    const d = mkdtempSync(join(tmpdir(), 'weft-arch-'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'] }));
    expect(() => resolveArchitecture(d)).toThrow(
      /GPT2LMHeadModel.*supported: DeepseekV2ForCausalLM, DeepseekV3ForCausalLM, Gemma2ForCausalLM, LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM, Phi3ForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM/,
    );
  });

  it('EOS ids come from config.json, generation_config.json and the tokenizer', () => {
    const d = mkdtempSync(join(tmpdir(), 'weft-eos-'));
    writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ eos_token_id: [128001, 128009] }));
    expect(readEosTokenIds(d, { eosTokenId: 128001 }, { eosTokenIds: [7] })).toEqual([7, 128001, 128009]);
  });
});
