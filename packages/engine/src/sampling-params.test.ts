import { describe, expect, it } from 'vitest';
import { RequestError } from './errors.js';
import { checkVocab, resolveSamplingParams, withEosTokenIds } from './sampling-params.js';

describe('SamplingParams validation', () => {
  it.each([
    [{ temperature: -1 }, 'temperature'],
    [{ topP: 2 }, 'topP'],
    [{ topP: 0 }, 'topP'],
    [{ maxTokens: 1.5 }, 'maxTokens'],
    [{ maxTokens: 0 }, 'maxTokens'],
    [{ n: 0 }, 'n'],
    [{ topK: -2 }, 'topK'],
    [{ minP: 1.5 }, 'minP'],
    [{ logprobs: 21 }, 'logprobs'],
    [{ presencePenalty: 3 }, 'presencePenalty'],
    [{ repetitionPenalty: 0 }, 'repetitionPenalty'],
    [{ seed: 0.5 }, 'seed'],
    [{ stop: [''] }, 'stop'],
    [{ stopTokenIds: [-1] }, 'stopTokenIds'],
    [{ temperature: Number.NaN }, 'temperature'],
    [{ temprature: 1 } as never, 'temprature'],
    [{ logitBias: { x: 1 } } as never, 'logitBias'],
    [{ logitBias: { 5: Number.POSITIVE_INFINITY } }, 'logitBias'],
    [{ logitBias: [1, 2] } as never, 'logitBias'],
    [{ logitBias: new Map([[-1, 2]]) }, 'logitBias'],
    [{ minTokens: -1 }, 'minTokens'],
    [{ minTokens: 20, maxTokens: 10 }, 'minTokens'],
    [{ includeStopStrInOutput: 'yes' } as never, 'includeStopStrInOutput'],
    [{ skipSpecialTokens: 0 } as never, 'skipSpecialTokens'],
    [{ bestOf: 1, n: 2 }, 'bestOf'],
    [{ bestOf: 2.5 }, 'bestOf'],
  ])('%j is rejected naming %s', (init, field) => {
    let err: unknown;
    try {
      resolveSamplingParams(init);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).field).toBe(field);
    expect((err as Error).message).toContain(field);
  });

  it('a non-finite number is named as it is (JSON would say null)', () => {
    expect(() => resolveSamplingParams({ temperature: Number.NaN })).toThrow(/^temperature must be a finite number, got NaN$/);
    expect(() => resolveSamplingParams({ topP: Number.POSITIVE_INFINITY })).toThrow(/^topP must be a finite number, got Infinity$/);
    expect(() => resolveSamplingParams({ temperature: '1' } as never)).toThrow(/^temperature must be a finite number, got "1"$/);
  });

  it('fills vLLM defaults; unseeded requests still get a fixed seed', () => {
    const p = resolveSamplingParams({});
    expect(p).toMatchObject({ n: 1, temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: 16, stop: [], logprobs: null, seeded: false });
    expect(Number.isInteger(p.seed)).toBe(true);
    expect(resolveSamplingParams({ stop: 'x', topK: -1, seed: 7 })).toMatchObject({ stop: ['x'], topK: 0, seed: 7, seeded: true });
    expect(p).toMatchObject({ logitBias: [], minTokens: 0, includeStopStrInOutput: false, skipSpecialTokens: true, bestOf: 1 });
    expect(resolveSamplingParams({ n: 3 }).bestOf).toBe(3);
  });

  it('logitBias takes JSON objects (string keys) and Maps; minTokens masks the stop ids and, once the engine adds them, EOS', () => {
    expect(resolveSamplingParams({ logitBias: { '12': -100, 3: 2.5 } }).logitBias).toEqual([[3, 2.5], [12, -100]]);
    expect(resolveSamplingParams({ logitBias: new Map([[7, 1]]) }).logitBias).toEqual([[7, 1]]);
    const p = resolveSamplingParams({ stopTokenIds: [9, 4], minTokens: 2 });
    expect(withEosTokenIds(p, [1, 4]).allStopTokenIds).toEqual([1, 4, 9]);
    expect(() => checkVocab(resolveSamplingParams({ logitBias: { 100: 1 } }), 100)).toThrow(/logitBias token id\(s\) 100 are outside the vocabulary \[0, 100\)/);
  });
});
