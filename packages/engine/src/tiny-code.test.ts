/**
 * The embedded default model (bf16, 8 heads / 4 KV heads): its 32-token greedy
 * continuations must equal Hugging Face's exactly (reference margins ≥ 0.066)
 * at every TP layout the heads allow, KV replication at tp 8 included.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LLM } from './llm.js';

const dir = fileURLToPath(new URL('../../../models/weft-tiny-code', import.meta.url));
const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8')) as {
  cases: { prompt: string; input_ids: number[]; greedy: number[]; greedy_text: string }[];
};

// CI: tp 1 and tp 2 × pp 3 (sharding and an odd pipeline); WEFT_FULL_MATRIX=1 (`npm run test:full`) adds tp 2 and
// tp 8 (KV replication, which llama-parity checks at tp 8 in CI).
const LAYOUTS = [
  { tp: 1, pp: 1 },
  { tp: 2, pp: 1, full: true },
  { tp: 8, pp: 1, full: true },
  { tp: 2, pp: 3 },
];

describe('weft-tiny-code generates what Hugging Face generates', () => {
  it.each(LAYOUTS.filter((l) => !l.full || process.env['WEFT_FULL_MATRIX'] === '1'))('tp=$tp pp=$pp, all prompts batched in one forward', async ({ tp, pp }) => {
    const llm = await LLM.load(dir, { tp, pp });
    try {
      // Text prompts: the tokenizer must produce HF's ids too.
      for (const c of expected.cases) expect(llm.encode(c.prompt)).toEqual(c.input_ids);
      const outs = await llm.generate(expected.cases.map((c) => c.prompt), { maxTokens: 32, ignoreEos: true });
      outs.forEach((o, i) => {
        expect(o.tokenIds).toEqual(expected.cases[i]!.greedy);
        expect(o.text).toBe(expected.cases[i]!.greedy_text);
      });
    } finally {
      await llm.close();
    }
  });
});
