import { ConfigError } from './errors.js';

/** `numerator / denominator`, throwing with both sizes named when it does not divide. */
export function divide(numerator: number, denominator: number, what = 'value', by = 'tp'): number {
  if (!Number.isInteger(numerator) || !Number.isInteger(denominator) || denominator <= 0) {
    throw new ConfigError(`${what}=${numerator} cannot be split by ${by}=${denominator}`);
  }
  if (numerator % denominator !== 0) {
    throw new ConfigError(
      `${what}=${numerator} is not divisible by ${by}=${denominator}` +
        ` (choose ${by} from ${divisors(numerator).join(', ')})`,
    );
  }
  return numerator / denominator;
}

/** Divisors of n, ascending: used to suggest valid tp sizes in errors. */
export function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

/** `[start, end)` of an even split of `size` over `worldSize` ranks. */
export function shardRange(size: number, rank: number, worldSize: number, what = 'size'): [number, number] {
  if (rank < 0 || rank >= worldSize) throw new ConfigError(`rank ${rank} is outside world size ${worldSize}`);
  const per = divide(size, worldSize, what, 'world size');
  return [rank * per, (rank + 1) * per];
}

export function padTo(size: number, multiple: number): number {
  return Math.ceil(size / multiple) * multiple;
}

/** vLLM's vocab split: pad to a multiple of 64 (times tp), then an even range per rank. */
export function vocabRange(vocabSize: number, rank: number, worldSize: number, padMultiple = 64): {
  padded: number;
  start: number;
  end: number;
} {
  const padded = padTo(vocabSize, padMultiple * worldSize);
  const per = padded / worldSize;
  return { padded, start: rank * per, end: (rank + 1) * per };
}
