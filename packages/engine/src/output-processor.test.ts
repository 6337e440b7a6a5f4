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

  it('a stop token (EOS or stopTokenIds) is in tokenIds, never in text, unless includeStopStrInOutput', () => {
    const eos = run({ maxTokens: 100 }, ids, [ids[2]!]);
    expect(eos.out.text).toBe(tok.decode(ids.slice(0, 2)));
    expect(eos.deltas.join('')).toBe(eos.out.text);
    expect(eos.req.stopReason).toBe(ids[2]);
    const kept = run({ maxTokens: 100, stopTokenIds: [ids[2]!], includeStopStrInOutput: true }, ids);
    expect(kept.out.text).toBe(tok.decode(ids.slice(0, 3)));
  });

  it('includeStopStrInOutput keeps the stop string (streamed as it comes) and cuts what follows it', () => {
    const r = run({ stop: ['ST'], maxTokens: 100, includeStopStrInOutput: true }, ids);
    expect(r.out.text).toBe('alpha beta ST');
    expect(r.deltas.join('')).toBe('alpha beta ST');
    expect(r.req.stopReason).toBe('ST');
  });

  it('minTokens: neither stop tokens nor stop strings end the request before it', () => {
    // ids: al p h a ␣b et a ␣S T O P ... ('alpha' is complete at 4 tokens; 'a' (66) is tokens 3 and 6).
    const early = run({ stop: ['alpha'], maxTokens: 100, minTokens: 4 }, ids, [ids[1]!]);
    expect(early.reason).toBeNull();
    expect(early.req.outputTokenIds).toEqual(ids);
    const st = run({ stopTokenIds: [ids[3]!], maxTokens: 100, minTokens: 5 }, ids);
    expect([st.reason, st.req.outputTokenIds.length]).toEqual(['stop', 7]);
  });
});
