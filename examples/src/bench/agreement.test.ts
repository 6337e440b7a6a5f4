import { describe, expect, it } from 'vitest';
import { compareTeacherForced, describeAgreement, logSoftmax, top2 } from './agreement.js';

describe('teacher-forced agreement', () => {
  it('log-softmax sums to one and keeps the differences of the logits', () => {
    const lp = logSoftmax([1, 2, 3]);
    expect(Array.from(lp).reduce((t, x) => t + Math.exp(x), 0)).toBeCloseTo(1, 12);
    expect(lp[2]! - lp[0]!).toBeCloseTo(2, 12);
  });

  it('top-1 and its margin over the runner-up, wherever they sit', () => {
    expect(top2([0.1, 0.5, 0.45])).toEqual({ top: 1, margin: 0.5 - 0.45 });
    expect(top2([3, 1, 2])).toEqual({ top: 0, margin: 1 });
  });

  it('counts equal top-1s, reports the margins where they differ and the KL divergence', () => {
    const ref = [logSoftmax([0, 1, 0]), logSoftmax([2, 0, 2.001])];
    const weft = [[0, 1, 0], [2.001, 0, 2]]; // step 1: the two near-equal top entries swap
    const a = compareTeacherForced(weft, ref);
    expect(a.equal).toBe(1);
    expect(a.steps[1]).toMatchObject({ weftTop: 0, refTop: 2 });
    expect(a.steps[1]!.refMargin).toBeCloseTo(0.001, 9);
    expect(a.steps[0]!.kl).toBeCloseTo(0, 12);
    expect(a.steps[1]!.kl).toBeGreaterThan(0);
    expect(a.maxAbsLogProbDiff).toBeCloseTo(0.001, 6);
    expect(describeAgreement(a)).toMatch(/^top-1 equal 1\/2 \(step 1: top-1 margins weft 1\.0e-3 \/ ref 1\.0e-3\), mean KL/);
  });

  it('a different function is far from the reference: KL and top-1s show it', () => {
    const ref = [logSoftmax([5, 0, 0])];
    const a = compareTeacherForced([[0, 5, 0]], ref);
    expect(a.equal).toBe(0);
    expect(a.meanKl).toBeGreaterThan(4);
  });

  it('skips tokens the reference left out (−∞) and refuses rows of other sizes', () => {
    const ref = [Float64Array.from([Math.log(0.5), Math.log(0.5), -Infinity])];
    expect(compareTeacherForced([[0, 0, -50]], ref).maxAbsLogProbDiff).toBeLessThan(1e-12);
    expect(() => compareTeacherForced([[0, 0]], ref)).toThrow(/step 0 has 2 weft columns against 3 reference columns/);
    expect(() => compareTeacherForced([], ref)).toThrow(/0 weft rows against 1 reference rows/);
  });
});
