import { describe, expect, it } from 'vitest';
import { RequestError } from './errors.js';
import { resolveSamplingParams } from './sampling-params.js';

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

  it('fills vLLM defaults; unseeded requests still get a fixed seed', () => {
    const p = resolveSamplingParams({});
    expect(p).toMatchObject({ n: 1, temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: 16, stop: [], logprobs: null, seeded: false });
    expect(Number.isInteger(p.seed)).toBe(true);
    expect(resolveSamplingParams({ stop: 'x', topK: -1, seed: 7 })).toMatchObject({ stop: ['x'], topK: 0, seed: 7, seeded: true });
  });
});
