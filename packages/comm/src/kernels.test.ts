import { describe, expect, it } from 'vitest';
import { Reducer, sharedMemory } from './kernels.js';
import { reduceInto } from './reduce.js';

describe('reduction kernels', () => {
  const { memory, buffer } = sharedMemory(1 << 20);
  const reducer = new Reducer(memory, buffer);

  it('uses wasm SIMD on this Node', () => {
    expect(memory).not.toBeNull();
    expect(reducer.simd).toBe(true);
  });

  it('matches the JS reduction bit for bit: every arity, odd lengths and offsets, both types and ops', () => {
    const f32 = new Float32Array(buffer);
    const i32 = new Int32Array(buffer);
    let seed = 1;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) * 2 - 1;
    for (const type of [0, 1] as const) {
      for (const op of ['sum', 'max'] as const) {
        for (const arity of [1, 2, 3, 4, 5, 8, 9]) {
          for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 1000, 4099]) {
            const view = type === 0 ? f32 : i32;
            const stride = 5000; // elements between sources
            const srcs = Array.from({ length: arity }, (_, j) => (j * stride + (j % 3)) * 4);
            for (const s of srcs) for (let i = 0; i < n; i++) view[s / 4 + i] = type === 0 ? rnd() * 1e4 : Math.round(rnd() * 2 ** 31);
            if (type === 0 && n > 10) view[srcs[0]! / 4 + 7] = NaN;
            const out = (arity * stride + 3) * 4;
            const want = type === 0 ? new Float32Array(n) : new Int32Array(n);
            reduceInto(want, srcs.map((s) => view.subarray(s / 4, s / 4 + n)), op);
            reducer.reduce(out, srcs, n, type, op);
            const got = view.slice(out / 4, out / 4 + n);
            expect(Array.from(got), `${type} ${op} arity ${arity} n ${n}`).toEqual(Array.from(want));
            // in place: out is the first source
            reducer.reduce(srcs[0]!, srcs, n, type, op);
            expect(Array.from(view.slice(srcs[0]! / 4, srcs[0]! / 4 + n))).toEqual(Array.from(want));
          }
        }
      }
    }
  });
});
