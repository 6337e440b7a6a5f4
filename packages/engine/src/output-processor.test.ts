import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from './detokenizer.js';
import { RequestOutputState } from './output-processor.js';
import { Request } from './request.js';
import { resolveSamplingParams, type SamplingParamsInit } from './sampling-params.js';

const tok = loadTokenizer(fileURLToPath(new URL('../../../fixtures/tokenizer-bytelevel-bpe', import.meta.url)));
const text = 'def f(x):\n    return "héllo → 世界 🎉" + x  # naïve\n';

describe('incremental detokenizer', () => {
  it('streams exactly the full decode, holding back split UTF-8 characters', () => {
    const prompt = tok.encode('print(');
    const ids = tok.encode(text, { addSpecialTokens: false });
    const d = new IncrementalDetokenizer(tok, prompt);
    const deltas = ids.map((t) => d.push(t));
    expect(deltas.join('')).toBe(tok.decode(ids));
    expect(deltas.some((x) => x.includes('\uFFFD'))).toBe(false);
    // Byte-level BPE splits the emoji: some tokens yield nothing until it completes.
    expect(deltas.filter((x) => x === '').length).toBeGreaterThan(0);
  });

  it('decodes a window, not the whole output (amortised O(1) per token)', () => {
    let decoded = 0;
    const counting = { ...tok, decode: (x: readonly number[]) => ((decoded += x.length), tok.decode(x)) };
    const ids = tok.encode(text.repeat(20), { addSpecialTokens: false });
    const d = new IncrementalDetokenizer(counting, []);
    for (const t of ids) d.push(t);
    expect(d.text).toBe(tok.decode(ids));
    expect(decoded / ids.length).toBeLessThan(20);
  });
});

describe('output processor', () => {
  const run = (init: SamplingParamsInit, ids: number[], eos: number[] = []) => {
    const req = new Request(1, [1, 2], resolveSamplingParams(init));
    const out = new RequestOutputState(req, tok, eos);
    const deltas: string[] = [];
    let reason = null;
    for (const t of ids) {
      const { delta, finish } = out.accept(t);
      deltas.push(delta.text);
      if (finish) {
        reason = finish;
        break;
      }
    }
    return { req, out, deltas, reason };
  };
  const ids = tok.encode('alpha beta STOP gamma delta', { addSpecialTokens: false });

  it('stop strings end the request and are not returned, not even streamed in part', () => {
    const r = run({ stop: ['STOP', 'zzz'], maxTokens: 100 }, ids);
    expect(r.reason).toBe('stop');
    expect(r.out.text).toBe('alpha beta ');
    expect(r.deltas.join('')).toBe('alpha beta ');
    expect(r.req.stopReason).toBe('STOP');
  });

  it('EOS (unless ignoreEos), stop token ids, max tokens', () => {
    expect(run({ maxTokens: 100 }, ids, [ids[2]!]).req.outputTokenIds).toEqual(ids.slice(0, 3));
    expect(run({ maxTokens: 100, ignoreEos: true }, ids, [ids[2]!]).reason).toBeNull();
    const st = run({ maxTokens: 100, stopTokenIds: [ids[1]!] }, ids);
    expect([st.reason, st.req.stopReason, st.req.outputTokenIds.length]).toEqual(['stop', ids[1], 2]);
    const len = run({ maxTokens: 3 }, ids);
    expect([len.reason, len.out.text]).toEqual(['length', tok.decode(ids.slice(0, 3))]);
  });
});
