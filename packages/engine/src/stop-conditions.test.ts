/**
 * Requests that end by themselves (EOS), alone, batched and streamed, on the
 * embedded model: the stop token is never text, stopReason names what ended
 * it; and the sampling parameters that act on logits or on the output
 * (logitBias, minTokens, includeStopStrInOutput, skipSpecialTokens, bestOf).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LLM, type StreamEvent } from './llm.js';

const dir = fileURLToPath(new URL('../../../models/weft-tiny-code', import.meta.url));
/** Greedy, the model ends this at once with <|end_of_text|> (id 1). */
const ENDS_AT_ONCE = 'if __name__ == "__main__":\n    main()\n';
/** Sampled with this seed, the model writes 29 tokens, then <|end_of_text|>. */
const ENDS_LATER = { prompt: '\n', params: { temperature: 1, seed: 0, maxTokens: 100 } };
const PROMPT = 'def forward(self, hidden_states):\n';
const EOS = 1;

describe('requests that stop on EOS (weft-tiny-code)', () => {
  let llm: LLM;
  beforeAll(async () => {
    llm = await LLM.load(dir);
  });
  afterAll(async () => {
    await llm?.close();
  });

  it('alone: finish "stop", stopReason the EOS id, the token in tokenIds but never in text', async () => {
    const [a] = await llm.generate([ENDS_AT_ONCE], { maxTokens: 20 });
    expect(a).toMatchObject({ finishReason: 'stop', stopReason: EOS, tokenIds: [EOS], text: '' });
    const [b] = await llm.generate([ENDS_LATER.prompt], ENDS_LATER.params);
    expect(b!.finishReason).toBe('stop');
    expect(b!.stopReason).toBe(EOS);
    expect(b!.tokenIds.at(-1)).toBe(EOS);
    expect(b!.tokenIds.length).toBeGreaterThan(5);
    expect(b!.text).not.toContain('<|end_of_text|>');
    expect(b!.text).toBe(llm.tokenizer!.decode(b!.tokenIds.slice(0, -1)));
  });

  it('batched with requests that run to their limit: the same outputs; a length stop has stopReason null', async () => {
    const [a] = await llm.generate([ENDS_AT_ONCE], { maxTokens: 20 });
    const [b] = await llm.generate([ENDS_LATER.prompt], ENDS_LATER.params);
    const batch = await llm.generate(
      [PROMPT, ENDS_LATER.prompt, ENDS_AT_ONCE, 'import torch\n'],
      [{ maxTokens: 7, ignoreEos: true }, ENDS_LATER.params, { maxTokens: 20 }, { maxTokens: 9, temperature: 0.8, seed: 3, ignoreEos: true }],
    );
    expect(batch[1]).toEqual({ ...b, index: 1 });
    expect(batch[2]).toEqual({ ...a, index: 2 });
    expect(batch[0]).toMatchObject({ finishReason: 'length', stopReason: null });
    expect(batch[0]!.tokenIds).toHaveLength(7);
    expect(batch[3]!.tokenIds).toHaveLength(9);
  });

  it('streamed: the deltas add up to the text, the last event carries finish and stop reasons', async () => {
    const [b] = await llm.generate([ENDS_LATER.prompt], ENDS_LATER.params);
    const evs: StreamEvent[] = [];
    for await (const ev of llm.stream(ENDS_LATER.prompt, ENDS_LATER.params)) evs.push(ev);
    expect(evs.map((e) => e.text).join('')).toBe(b!.text);
    expect(evs.flatMap((e) => e.tokenIds)).toEqual(b!.tokenIds);
    expect(evs.at(-1)).toMatchObject({ finishReason: 'stop', stopReason: EOS });
    expect(evs.slice(0, -1).every((e) => e.finishReason === null && e.stopReason === undefined)).toBe(true);
  });

  it('includeStopStrInOutput keeps the stop token, as text only when special tokens are not skipped', async () => {
    const [kept] = await llm.generate([ENDS_AT_ONCE], { maxTokens: 20, includeStopStrInOutput: true, skipSpecialTokens: false });
    expect(kept!.text).toBe('<|end_of_text|>');
    const [skipped] = await llm.generate([ENDS_AT_ONCE], { maxTokens: 20, includeStopStrInOutput: true });
    expect(skipped!.text).toBe('');
  });

  it('skipSpecialTokens (default true) leaves special tokens the model writes out of the text', async () => {
    // logitBias makes the model write <|begin_of_text|> (id 0) three times.
    const params = { maxTokens: 3, logitBias: { 0: 100 } };
    const [skip] = await llm.generate([PROMPT], params);
    expect(skip!.tokenIds).toEqual([0, 0, 0]);
    expect(skip!.text).toBe('');
    const [keep] = await llm.generate([PROMPT], { ...params, skipSpecialTokens: false });
    expect(keep!.text).toBe('<|begin_of_text|>'.repeat(3));
  });

  it('minTokens: EOS cannot come before it (greedy and sampled); stop strings are not checked before it', async () => {
    const [g] = await llm.generate([ENDS_AT_ONCE], { maxTokens: 20, minTokens: 4 });
    expect(g!.tokenIds.slice(0, 4)).not.toContain(EOS);
    expect(g!.tokenIds.length).toBeGreaterThanOrEqual(4);
    const [s] = await llm.generate([ENDS_LATER.prompt], { ...ENDS_LATER.params, minTokens: 60 });
    expect(s!.tokenIds.slice(0, 60)).not.toContain(EOS);
    expect(s!.tokenIds.length).toBeGreaterThan(60);
    // A stop string the text holds early on: ignored until minTokens tokens were generated.
    const [free] = await llm.generate([PROMPT], { maxTokens: 24, ignoreEos: true });
    const stop = free!.text.slice(2, 5);
    const early = await llm.generate([PROMPT], { maxTokens: 24, ignoreEos: true, stop: [stop] });
    expect(early[0]!.tokenIds.length).toBeLessThan(8);
    const [late] = await llm.generate([PROMPT], { maxTokens: 24, ignoreEos: true, stop: [stop], minTokens: 8 });
    expect(late!.tokenIds.slice(0, 8)).toEqual(free!.tokenIds.slice(0, 8));
    expect(late!.tokenIds.length).toBeGreaterThanOrEqual(8);
  });

  it('logitBias: a banned token never comes out, a favoured one always does (greedy and sampled)', async () => {
    const [free] = await llm.generate([PROMPT], { maxTokens: 8, ignoreEos: true });
    const first = free!.tokenIds[0]!;
    const [banned] = await llm.generate([PROMPT], { maxTokens: 8, ignoreEos: true, logitBias: { [first]: -100 } });
    expect(banned!.tokenIds[0]).not.toBe(first);
    expect(banned!.tokenIds).not.toContain(first);
    const [forced] = await llm.generate([PROMPT], { maxTokens: 5, ignoreEos: true, temperature: 1, seed: 9, logitBias: new Map([[42, 100]]) });
    expect(forced!.tokenIds).toEqual([42, 42, 42, 42, 42]);
    await expect(llm.generate([PROMPT], { logitBias: { 4096: 1 } })).rejects.toThrow(/logitBias.*4096.*outside the vocabulary \[0, 4096\)/);
  });

  it('bestOf: the n of the bestOf sequences with the highest cumulative logprob, best first', async () => {
    const params = { temperature: 1, seed: 77, maxTokens: 10, ignoreEos: true };
    const [all] = await llm.generate([PROMPT], { ...params, n: 4, logprobs: 0 });
    const ranked = [...all!.outputs!].sort((x, y) => y.cumulativeLogprob! - x.cumulativeLogprob!);
    const [best] = await llm.generate([PROMPT], { ...params, n: 2, bestOf: 4 });
    expect(best!.outputs!.map((o) => o.tokenIds)).toEqual(ranked.slice(0, 2).map((o) => o.tokenIds));
    expect(best!.outputs!.map((o) => o.index)).toEqual([0, 1]);
    expect(best!.outputs![0]!.cumulativeLogprob).toBeCloseTo(ranked[0]!.cumulativeLogprob!, 5);
    expect(best!.outputs![0]!.logprobs).toBeUndefined();
    const sum = all!.outputs![0]!.logprobs!.reduce((a, l) => a + l.logprob, 0);
    expect(all!.outputs![0]!.cumulativeLogprob).toBeCloseTo(sum, 5);
    await expect(llm.stream(PROMPT, { ...params, bestOf: 2 }).next()).rejects.toThrow(/bestOf.*cannot be streamed/);
    expect(llm.stats()).toMatchObject({ running: 0, waiting: 0, kvBlocksUsed: 0 });
  });

  it('numCachedTokens: the prompt tokens the prefix cache held, on the output and the last stream event', async () => {
    const long = PROMPT.repeat(5);
    const [first] = await llm.generate([long], { maxTokens: 2, ignoreEos: true });
    const [again] = await llm.generate([long], { maxTokens: 2, ignoreEos: true });
    expect(again!.numCachedTokens).toBeGreaterThanOrEqual(16);
    expect(again!.numCachedTokens).toBeGreaterThan(first!.numCachedTokens);
    const evs: StreamEvent[] = [];
    for await (const ev of llm.stream(long, { maxTokens: 2, ignoreEos: true })) evs.push(ev);
    expect(evs.at(-1)!.numCachedTokens).toBe(again!.numCachedTokens);
  });
});
