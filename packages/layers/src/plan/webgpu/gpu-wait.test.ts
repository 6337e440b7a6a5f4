import { describe, expect, it } from 'vitest';
import { GpuWait, sleepMs } from './gpu-wait.js';

/** ms that `f` took. */
function timed(f: () => void): number {
  const t = performance.now();
  f();
  return performance.now() - t;
}

describe('GpuWait: sleeping through the part of a read-back wait every recent one took', () => {
  it('sleepMs blocks the thread for at least the time asked', () => {
    expect(timed(() => sleepMs(3))).toBeGreaterThanOrEqual(2.9);
  });

  it('sleeps only after two waits of a shape, for their minimum less the margin, and follows shorter waits down', () => {
    const w = new GpuWait();
    // A wait of 12 ms for shape a: `learn` measures from what `before` returned.
    w.learn('a', performance.now() - 12);
    expect(timed(() => w.before('a'))).toBeLessThan(5);
    w.learn('a', performance.now() - 10);
    // min(12, 10) − 0.3
    expect(timed(() => w.before('a'))).toBeGreaterThanOrEqual(9.6);
    // Another shape has its own waits.
    expect(timed(() => w.before('b'))).toBeLessThan(5);
    w.learn('a', performance.now() - 1);
    const short = timed(() => w.before('a'));
    expect(short).toBeGreaterThanOrEqual(0.6);
    expect(short).toBeLessThan(9.6);
    w.clear();
    expect(timed(() => w.before('a'))).toBeLessThan(5);
  });
});
