/**
 * Every sharded layer against the dense computation, on real worker threads,
 * at tp 1, 2, 3 and 4 with deliberately odd sizes (fairscale's 13×ws habit).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { runRanks } from '@weft/comm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Case } from './test-entries/parallel-layers.js';
import { randomHost, randomIds } from './test-entries/random.js';

const entry = new URL('./test-entries/parallel-layers.ts', import.meta.url);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function cases(ws: number): Case[] {
  const T = 5;
  const inp = 13 * ws;
  return [
    { kind: 'column', T, inputSize: 7, outputSize: 13 * ws, bias: true },
    { kind: 'column-gather', T, inputSize: 7, outputSize: 13 * ws, bias: true },
    { kind: 'row', T, inputSize: inp, outputSize: 9, bias: true },
    { kind: 'row-unsplit', T, inputSize: inp, outputSize: 9, bias: false },
    { kind: 'merged', T, inputSize: 7, outputSize: 11 * ws, outputSizes: [6 * ws, 5 * ws], bias: true },
    { kind: 'merged-fused', T, inputSize: 7, outputSize: 11 * ws, outputSizes: [6 * ws, 5 * ws], bias: true },
    // kv heads fewer than, equal to and more than tp (replication when tp > kv heads)
    ...[1, 2, 4].filter((kv) => (ws >= kv ? ws % kv : kv % ws) === 0).map((kv) => ({ kind: 'qkv' as const, T, inputSize: 11, outputSize: (4 * ws + 2 * kv) * 3, heads: 4 * ws, kvHeads: kv, headSize: 3, bias: true })),
    { kind: 'qkv-fused', T, inputSize: 11, outputSize: (2 * ws + 2 * 1) * 3, heads: 2 * ws, kvHeads: 1, headSize: 3, bias: false },
    { kind: 'embedding', T: 17, inputSize: 6, outputSize: 131 },
    { kind: 'lm-head', T, inputSize: 6, outputSize: 131 },
    { kind: 'mlp', T, inputSize: 9, outputSize: 13 * ws },
  ] as Case[];
}

/** What rank `rank` of `ws` must hold for case `c`. */
function expected(c: Case, rank: number, ws: number): number[] | null {
  tf.engine().startScope();
  try {
    return expectedIn(c, rank, ws);
  } finally {
    tf.engine().endScope();
  }
}

function expectedIn(c: Case, rank: number, ws: number): number[] | null {
  {
    const x = tf.tensor(randomHost([c.T, c.inputSize], 1).data, [c.T, c.inputSize]);
    const W = tf.tensor(randomHost([c.outputSize, c.inputSize], 2).data, [c.outputSize, c.inputSize]);
    const B = tf.tensor(randomHost([c.outputSize], 3).data);
    const dense = (withBias: boolean | undefined) => (withBias ? tf.add(tf.matMul(x, W, false, true), B) : tf.matMul(x, W, false, true));
    const cols = (y: tf.Tensor, start: number, n: number) => tf.slice(y, [0, start], [-1, n]);
    switch (c.kind) {
      case 'column': {
        const per = c.outputSize / ws;
        return Array.from(cols(dense(c.bias), rank * per, per).dataSync());
      }
      case 'column-gather':
      case 'row':
      case 'row-unsplit':
        return Array.from(dense(c.bias).dataSync());
      case 'merged':
      case 'merged-fused': {
        // Gathered output of a merged layer is each rank's [gate_r | up_r], in rank order.
        const y = dense(c.bias);
        const sizes = c.outputSizes!;
        const parts: tf.Tensor[] = [];
        for (let r = 0; r < ws; r++) {
          let off = 0;
          for (const s of sizes) {
            parts.push(cols(y, off + (r * s) / ws, s / ws));
            off += s;
          }
        }
        return Array.from(tf.concat(parts, 1).dataSync());
      }
      case 'qkv':
      case 'qkv-fused': {
        const y = dense(c.bias);
        const hs = c.headSize!;
        const heads = c.heads! / ws;
        const kv = c.kvHeads!;
        const kvPer = ws >= kv ? 1 : kv / ws;
        const kvRank = ws >= kv ? Math.floor(rank / (ws / kv)) : rank;
        const q = cols(y, rank * heads * hs, heads * hs);
        const k = cols(y, c.heads! * hs + kvRank * kvPer * hs, kvPer * hs);
        const v = cols(y, (c.heads! + kv) * hs + kvRank * kvPer * hs, kvPer * hs);
        return Array.from(tf.concat([q, k, v], 1).dataSync());
      }
      case 'embedding': {
        const E = tf.tensor(randomHost([c.outputSize, c.inputSize], 4).data, [c.outputSize, c.inputSize]);
        return Array.from(tf.gather(E, tf.tensor1d(randomIds(c.T, c.outputSize, 5), 'int32')).dataSync());
      }
      case 'lm-head': {
        if (rank !== 0) return null;
        const E = tf.tensor(randomHost([c.outputSize, c.inputSize], 4).data, [c.outputSize, c.inputSize]);
        return Array.from(tf.matMul(x, E, false, true).dataSync());
      }
      case 'mlp': {
        const W2 = tf.tensor(randomHost([c.inputSize, c.outputSize], 6).data, [c.inputSize, c.outputSize]);
        const B2 = tf.tensor(randomHost([c.inputSize], 7).data);
        const h = tf.relu(dense(true));
        return Array.from(tf.add(tf.matMul(h, W2, false, true), B2).dataSync());
      }
    }
  }
}

describe.each([1, 2, 3, 4])('sharded layers at tp=%i equal the dense computation', (ws) => {
  it('column, row, merged, qkv, embedding, lm head, mlp', async () => {
    const cs = cases(ws);
    const results = (await runRanks({ parallel: { tp: ws }, entry, args: cs, backend: 'wasm' })) as Record<string, number[] | null>[];
    for (let rank = 0; rank < ws; rank++) {
      const got = results[rank]!;
      expect(got.leaked).toEqual([0]);
      cs.forEach((c, i) => {
        const want = expected(c, rank, ws);
        const have = got[`${i}`];
        if (want === null) {
          expect(have, `${c.kind} rank ${rank}`).toBeNull();
          return;
        }
        expect(have, `${c.kind} rank ${rank}`).not.toBeNull();
        expect(have!.length, `${c.kind} rank ${rank} size`).toBe(want.length);
        const maxErr = Math.max(...want.map((v, j) => Math.abs(v - have![j]!)));
        expect(maxErr, `${c.kind} rank ${rank} of ${ws}`).toBeLessThan(1e-4);
      });
    }
  });
});
