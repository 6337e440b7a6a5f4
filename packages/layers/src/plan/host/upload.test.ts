/**
 * The host upload of fp32 linear weights: held row-major (`LinearWeight.holdRowMajor`, what a host-plan rank does
 * before loading) the executor multiplies by the parameter's own values — no transposed copy — with the same bits
 * as the copy a `[in, out]` tensor gets; the tfjs side of such a weight (apply, denseTransposed, hostValues) is unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { availableIsas } from '@weft/cpu-kernels';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAttentionMetadata } from '../../attention-metadata.js';
import { LinearWeight } from '../../linear/linear-weight.js';
import { hostWeight } from '../../parameter.js';
import { UnquantizedLinearMethod } from '../../quantization/linear-method.js';
import { randomHost } from '../../test-entries/random.js';
import { PlanBuilder, whole } from '../builder.js';
import { hostValues } from '../weights.js';
import { HostPlanExecutor } from './host-executor.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const n = 48, k = 64;
const weights = randomHost([n, k], 7, 0.3);

function weight(rowMajor: boolean, bf16 = false): LinearWeight {
  const w = new LinearWeight('lm_head.weight', n, k, (p, h) => p.set(h.read(), h.name));
  if (bf16) w.useMethod(new UnquantizedLinearMethod('bfloat16'));
  if (rowMajor) w.holdRowMajor();
  w.load(hostWeight('lm_head.weight', weights));
  return w;
}

const bits = (a: Float32Array | Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('host upload of fp32 linear weights', () => {
  it('a row-major weight holds [out, in]; its tfjs tensor, apply and dense transpose are the usual ones', () => {
    const col = weight(false), row = weight(true);
    expect(row.isRowMajor).toBe(true);
    expect(col.isRowMajor).toBe(false);
    expect(row.held.shape).toEqual([n, k]);
    expect(bits(row.held.dataSync() as Float32Array).equals(bits(weights.data as Float32Array))).toBe(true);
    expect(row.tensor.shape).toEqual([k, n]);
    expect(bits(row.tensor.dataSync() as Float32Array).equals(bits(col.tensor.dataSync() as Float32Array))).toBe(true);
    const x = tf.tensor2d(randomHost([3, k], 8).data as Float32Array, [3, k]);
    const [a, b] = [col.apply(x), row.apply(x)];
    expect(bits(a.dataSync() as Float32Array).equals(bits(b.dataSync() as Float32Array))).toBe(true);
    // what MLA's absorption reads of an fp32 kv_b_proj: `[in, out]` either way
    expect(bits(hostValues(row)).equals(bits(hostValues(col)))).toBe(true);
    const [dc, dr] = [col.denseTransposed(), row.denseTransposed()];
    expect(bits(dc.dataSync() as Float32Array).equals(bits(dr.dataSync() as Float32Array))).toBe(true);
    tf.dispose([x, a, b, dc, dr]);
    expect(() => row.holdRowMajor()).toThrow(/before the weight is loaded/);
    // a packed weight keeps its blocks: the flag changes nothing
    expect(weight(true, true).isRowMajor).toBe(false);
    for (const w of [col, row]) w.dispose();
  });

  describe.each(availableIsas().filter((isa, i) => i === 0 || isa === 'portable'))('(%s)', (isa) => {
    it('the executor multiplies by a row-major weight without a copy, bit-equal to the transposed upload', async () => {
      const outs = [false, true].map((rowMajor) => {
        const w = weight(rowMajor);
        const b = new PlanBuilder();
        const x = b.act('x', k), out = b.act('out', n);
        b.op({ kind: 'linear', x: whole(x), out: whole(out), weight: w, bias: null, accumulate: false });
        const ex = new HostPlanExecutor(b.build(1, { hidden: out, inHidden: x, residual: null, inResidual: null }), { isa, threads: 2 });
        return { ex, w };
      });
      expect(outs.map((o) => o.ex.uploadedBytes)).toEqual([n * k * 4, 0]);
      const meta = buildAttentionMetadata([{ seqId: 0, queryLen: 3 }]);
      const hidden = randomHost([3, k], 9).data as Float32Array;
      const got = await Promise.all(outs.map(({ ex }) => ex.step({ tokenIds: new Int32Array(3), positions: Int32Array.of(0, 1, 2), seqs: meta.seqs, blockSize: 16, sampledRows: new Int32Array(0), hidden })));
      expect(bits(got[1]!.hidden!).equals(bits(got[0]!.hidden!))).toBe(true);
      for (const { ex, w } of outs) {
        ex.dispose();
        w.dispose();
      }
    });
  });
});
