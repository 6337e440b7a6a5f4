import { describe, expect, it } from 'vitest';
import { RANK_OVERHEAD_BYTES, availableMemory, checkWeightsFitElements } from './memory-fit.js';

const GB = 1e9;
// TinyLlama-1.1B: 1.1 G parameters, 4.4 GB of fp32 weights.
const TINYLLAMA = 1.1e9;

describe('checkWeightsFit', () => {
  it('wasm: a rank holds ~1.9 GB of weights; the error names the tp that would fit', () => {
    expect(() => checkWeightsFitElements(TINYLLAMA, 'tinyllama', { tp: 2, pp: 1, backend: 'wasm', availableBytes: 100 * GB })).toThrow(
      /tinyllama: 4\.40 GB of fp32 weights over tp×pp=2 ranks is 2\.20 GB per rank.*use tp×pp ≥ 3 \(e\.g\. --tp 4\)/,
    );
    expect(() => checkWeightsFitElements(TINYLLAMA, 'tinyllama', { tp: 1, pp: 3, backend: 'wasm', availableBytes: 100 * GB })).not.toThrow();
  });
  it('tensorflow has no per-rank cap: TinyLlama at tp 1 fits a host with room', () => {
    expect(() => checkWeightsFitElements(TINYLLAMA, 'tinyllama', { tp: 1, pp: 1, backend: 'tensorflow', availableBytes: 8 * GB })).not.toThrow();
  });
  it('the ranks of one host share its memory: the error says how many fit and to spread them over hosts', () => {
    const opts = { tp: 2, pp: 1, backend: 'tensorflow' as const, availableBytes: 4 * GB };
    expect(() => checkWeightsFitElements(TINYLLAMA, 'm', opts)).toThrow(/2 rank\(s\) on this host need 5\.47 GB .*4\.00 GB is available; this host holds 1 such rank/);
    // Spread over two hosts, one rank each: fits.
    expect(() => checkWeightsFitElements(TINYLLAMA, 'm', { ...opts, localRanks: 1 })).not.toThrow();
    // DP replicas each hold the whole model.
    expect(() => checkWeightsFitElements(TINYLLAMA, 'm', { tp: 1, pp: 1, dp: 2, backend: 'tensorflow', availableBytes: 8 * GB })).toThrow(/× dp 2/);
  });
  it('when not even one rank fits, names the smallest split with one rank per host', () => {
    expect(() => checkWeightsFitElements(TINYLLAMA, 'm', { tp: 1, pp: 1, backend: 'tensorflow', availableBytes: RANK_OVERHEAD_BYTES + 1.5 * GB })).toThrow(
      /one rank fits only at tp×pp ≥ 3 with at most one rank per host/,
    );
  });
  it('reads the memory available on this machine', () => {
    expect(availableMemory()).toBeGreaterThan(64 * 1024 ** 2);
  });
});
