/**
 * Rank entry for the sharded-layer tests: each rank builds the layer for its
 * TP shard from the same dense random weights and returns its forward output.
 * The test compares rank outputs with the dense computation.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '@weft/comm';
import {
  ColumnParallelLinear,
  hostWeight,
  MergedColumnParallelLinear,
  ParallelLMHead,
  QKVParallelLinear,
  RowParallelLinear,
  VocabParallelEmbedding,
} from '../index.js';
import { randomHost, randomIds } from './random.js';

export interface Case {
  kind: 'column' | 'column-gather' | 'row' | 'row-unsplit' | 'merged' | 'merged-fused' | 'qkv' | 'qkv-fused' | 'embedding' | 'lm-head' | 'mlp';
  T: number;
  inputSize: number;
  outputSize: number;
  outputSizes?: number[];
  heads?: number;
  kvHeads?: number;
  headSize?: number;
  bias?: boolean;
}

export async function main(ctx: RankContext): Promise<Record<string, number[] | null>> {
  const cases = ctx.args as Case[];
  const tp = ctx.state.tp;
  const out: Record<string, number[] | null> = {};
  const before = tf.memory().numTensors;
  for (const [i, c] of cases.entries()) {
    const y = await runCase(c, tp);
    out[`${i}`] = y ? Array.from(await y.data()) : null;
    y?.dispose();
  }
  // Every case disposes its layer: nothing may be left behind.
  out.leaked = [tf.memory().numTensors - before];
  return out;
}

async function runCase(c: Case, tp: RankContext['state']['tp']): Promise<tf.Tensor | null> {
  const x = tf.tensor(randomHost([c.T, c.inputSize], 1).data, [c.T, c.inputSize]) as tf.Tensor2D;
  const w = randomHost([c.outputSize, c.inputSize], 2);
  const b = randomHost([c.outputSize], 3);
  const prefix = 'l';
  try {
    switch (c.kind) {
      case 'column':
      case 'column-gather': {
        const l = new ColumnParallelLinear({ prefix, inputSize: c.inputSize, outputSize: c.outputSize, bias: c.bias, tp, gatherOutput: c.kind === 'column-gather' });
        l.weight.load(hostWeight('w', w));
        l.bias?.load(hostWeight('b', b));
        const y = await l.forward(x);
        l.dispose();
        return y;
      }
      case 'row':
      case 'row-unsplit': {
        const l = new RowParallelLinear({ prefix, inputSize: c.inputSize, outputSize: c.outputSize, bias: c.bias, tp, inputIsParallel: c.kind === 'row' });
        l.weight.load(hostWeight('w', w));
        l.bias?.load(hostWeight('b', b));
        // Input-parallel: feed this rank's slice of the dense input.
        const per = c.inputSize / tp.worldSize;
        const xin = c.kind === 'row' ? tf.slice(x, [0, tp.rankInGroup * per], [-1, per]) as tf.Tensor2D : x;
        const y = await l.forward(xin);
        if (xin !== x) xin.dispose();
        l.dispose();
        return y;
      }
      case 'merged':
      case 'merged-fused': {
        const sizes = c.outputSizes!;
        const l = new MergedColumnParallelLinear({ prefix, inputSize: c.inputSize, outputSizes: sizes, bias: c.bias, tp, gatherOutput: true });
        if (c.kind === 'merged-fused') {
          l.weight.load(hostWeight('w', w));
          l.bias?.load(hostWeight('b', b));
        } else {
          let off = 0;
          sizes.forEach((s, i) => {
            l.weight.load(hostWeight(`w${i}`, sliceRows(w, off, s)), i);
            l.bias?.load(hostWeight(`b${i}`, sliceRows(b, off, s)), i);
            off += s;
          });
        }
        // Gathered output is [gate shards of all ranks | ...]: return per-rank raw output instead for exactness.
        const y = await l.forward(x);
        l.dispose();
        return y;
      }
      case 'qkv':
      case 'qkv-fused': {
        const hs = c.headSize!;
        const l = new QKVParallelLinear({ prefix, hiddenSize: c.inputSize, headSize: hs, totalNumHeads: c.heads!, totalNumKvHeads: c.kvHeads, bias: c.bias, tp });
        if (c.kind === 'qkv-fused') {
          l.weight.load(hostWeight('w', w));
          l.bias?.load(hostWeight('b', b));
        } else {
          const q = c.heads! * hs;
          const k = c.kvHeads! * hs;
          for (const [id, off, size] of [['q', 0, q], ['k', q, k], ['v', q + k, k]] as const) {
            l.weight.load(hostWeight(`w.${id}`, sliceRows(w, off, size)), id);
            l.bias?.load(hostWeight(`b.${id}`, sliceRows(b, off, size)), id);
          }
        }
        const y = await l.forward(x);
        l.dispose();
        return y;
      }
      case 'embedding': {
        const emb = new VocabParallelEmbedding({ prefix: 'e', numEmbeddings: c.outputSize, embeddingDim: c.inputSize, tp });
        emb.weight.load(hostWeight('e', randomHost([c.outputSize, c.inputSize], 4)));
        const ids = tf.tensor1d(randomIds(c.T, c.outputSize, 5), 'int32');
        const y = await emb.forward(ids);
        ids.dispose();
        emb.dispose();
        return y;
      }
      case 'lm-head': {
        const emb = new VocabParallelEmbedding({ prefix: 'e', numEmbeddings: c.outputSize, embeddingDim: c.inputSize, tp });
        emb.weight.load(hostWeight('e', randomHost([c.outputSize, c.inputSize], 4)));
        const head = new ParallelLMHead({ prefix: 'h', numEmbeddings: c.outputSize, embeddingDim: c.inputSize, tp, tiedTo: emb });
        const y = await head.forward(x);
        head.dispose(); // the tied head's transposed copy; the embedding owns the weight
        emb.dispose();
        return y;
      }
      case 'mlp': {
        // Megatron's pair: column (no gather) → ReLU → row (all-reduce).
        const hidden = c.outputSize;
        const col = new ColumnParallelLinear({ prefix: 'fc1', inputSize: c.inputSize, outputSize: hidden, bias: true, tp });
        const row = new RowParallelLinear({ prefix: 'fc2', inputSize: hidden, outputSize: c.inputSize, bias: true, tp });
        col.weight.load(hostWeight('w1', w));
        col.bias!.load(hostWeight('b1', b));
        row.weight.load(hostWeight('w2', randomHost([c.inputSize, hidden], 6)));
        row.bias!.load(hostWeight('b2', randomHost([c.inputSize], 7)));
        const h = await col.forward(x);
        const a = tf.relu(h) as tf.Tensor2D;
        const y = await row.forward(a);
        h.dispose();
        a.dispose();
        col.dispose();
        row.dispose();
        return y;
      }
    }
  } finally {
    x.dispose();
  }
}

function sliceRows(h: ReturnType<typeof randomHost>, start: number, rows: number) {
  const inner = h.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: [rows, ...h.shape.slice(1)], dtype: h.dtype, data: h.data.slice(start * inner, (start + rows) * inner) };
}
