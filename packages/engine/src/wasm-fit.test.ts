import { describe, expect, it } from 'vitest';
import { checkWasmFitsElements } from './wasm-fit.js';

describe('wasm per-rank memory check', () => {
  const tinyLlama = 1_100_048_384; // TinyLlama-1.1B parameters
  it('refuses one rank and says which tp fits', () => {
    expect(() => checkWasmFitsElements(tinyLlama, 1, 1, 'tinyllama')).toThrow(
      /tinyllama: 4\.40 GB of fp32 weights over tp×pp=1 ranks is 4\.40 GB per rank.*use tp×pp ≥ 3 \(e\.g\. --tp 4\)/,
    );
  });
  it('accepts a split that fits', () => {
    expect(() => checkWasmFitsElements(tinyLlama, 2, 2, 'tinyllama')).not.toThrow();
    expect(() => checkWasmFitsElements(6_500_000, 1, 1, 'weft-tiny-code')).not.toThrow();
  });
});
