import { CollectiveTimeoutError } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { decodeJson, deserializeError, encodeJson, packJson, serializeError, unpackJson } from './codec.js';

describe('codec', () => {
  it('JSON round trips, as bytes and packed in an Int32Array', () => {
    for (const v of [{ a: [1, 'é', null] }, 'x', 0, null, [], undefined]) {
      expect(decodeJson(encodeJson(v))).toEqual(v);
      expect(unpackJson(packJson(v))).toEqual(v);
    }
    expect(() => encodeJson(() => 1)).toThrow(/cannot send a function as JSON/);
    expect(() => unpackJson(Int32Array.of(99))).toThrow(/corrupt/);
  });

  it('errors keep their class and stack', () => {
    const e = new CollectiveTimeoutError('late');
    const back = deserializeError(serializeError(e));
    expect(back).toBeInstanceOf(CollectiveTimeoutError);
    expect(back.stack).toBe(e.stack);
    const odd = deserializeError({ name: 'RangeError', message: 'x' });
    expect(odd.name).toBe('RangeError');
  });
});
