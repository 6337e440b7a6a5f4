/**
 * The request set bench:serving and bench:serve send (as vLLM's benchmark_serving random dataset):
 * prompts of uniform length in [32, 256] of token ids in [3, vocab), outputs uniform in
 * [minOut, maxOut] (default [16, 128]), from a fixed seed, so both benchmarks and every run send the same
 * requests; and Poisson arrivals for a request rate.
 */

export interface ServingRequest {
  promptTokenIds: number[];
  maxTokens: number;
}

/** Small seeded generator (uniform in [0, 1)): the same sequence on every machine. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s ^= s >>> 12;
    return (s >>> 0) / 4294967296;
  };
}

export function servingRequests(count: number, vocabSize: number, seed = 1, minOut = 16, maxOut = 128): ServingRequest[] {
  const r = rng(seed);
  const int = (a: number, b: number) => a + Math.floor(r() * (b - a + 1));
  return Array.from({ length: count }, () => ({ promptTokenIds: Array.from({ length: int(32, 256) }, () => int(3, vocabSize - 1)), maxTokens: int(minOut, maxOut) }));
}

/** Arrival times in seconds for `count` requests at `rate` requests/s (exponential gaps, Poisson); all 0 at rate Infinity. */
export function poissonArrivals(count: number, rate: number, seed: number): number[] {
  const r = rng(seed + 7);
  let t = 0;
  return Array.from({ length: count }, () => {
    if (!Number.isFinite(rate)) return 0;
    t += -Math.log(1 - r()) / rate;
    return t;
  });
}
