/**
 * Measures one attention layer's decode step: the paged cache (write the
 * new K/V rows in place, gather contexts through block tables, one batched
 * call) against the per-sequence concat cache weft had before (append with
 * `concat`, attend each sequence alone). Not a test: a script.
 *
 *   npx tsx --conditions=source examples/src/bench/paged-attention.ts [--backend wasm|tensorflow|cpu] [--steps 12]
 *
 * Shape: Llama-3.2-1B's attention on one rank (32 query heads, 8 KV heads, head 64).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '@weft/core';
import { Attention, buildAttentionMetadata, PagedKVCache } from '@weft/layers';
import { median } from './stats.js';

const H = 32;
const Hk = 8;
const D = 64;
const BLOCK = 16;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** The concat cache and per-sequence attention weft used before the paged cache (attention.ts / kv-cache.ts at 571aa6c). */
class ConcatBaseline {
  private readonly k = new Map<number, tf.Tensor3D>();
  private readonly v = new Map<number, tf.Tensor3D>();

  fill(seqId: number, n: number): void {
    this.k.set(seqId, tf.keep(tf.tensor3d(rand(n * Hk * D), [n, Hk, D])));
    this.v.set(seqId, tf.keep(tf.tensor3d(rand(n * Hk * D), [n, Hk, D])));
  }

  step(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, seqIds: number[]): tf.Tensor2D {
    return tf.tidy(() => {
      const outs = seqIds.map((id, row) => {
        const rows = (x: tf.Tensor2D) => (seqIds.length === 1 ? x : tf.slice(x, [row, 0], [1, -1]));
        const kAll = tf.keep(tf.concat([this.k.get(id)!, tf.reshape(rows(k), [1, Hk, D])], 0) as tf.Tensor3D);
        const vAll = tf.keep(tf.concat([this.v.get(id)!, tf.reshape(rows(v), [1, Hk, D])], 0) as tf.Tensor3D);
        this.k.get(id)!.dispose();
        this.v.get(id)!.dispose();
        this.k.set(id, kAll);
        this.v.set(id, vAll);
        const G = H / Hk;
        const kh = tf.transpose(kAll, [1, 0, 2]);
        const vh = tf.transpose(vAll, [1, 0, 2]);
        const qh = tf.reshape(tf.transpose(tf.reshape(rows(q), [1, Hk, G, D]), [1, 2, 0, 3]), [Hk, G, D]);
        const probs = tf.softmax(tf.mul(tf.matMul(qh, kh, false, true), D ** -0.5));
        const out = tf.matMul(probs, vh);
        return tf.reshape(tf.transpose(tf.reshape(out, [Hk, G, 1, D]), [2, 0, 1, 3]), [1, H * D]);
      });
      return (outs.length === 1 ? outs[0]! : tf.concat(outs, 0)) as tf.Tensor2D;
    });
  }

  dispose(): void {
    tf.dispose([...this.k.values(), ...this.v.values()]);
  }
}

interface Times {
  /** Fastest step: the machine's own cost when other processes share its cores. */
  concatMinMs: number;
  pagedMinMs: number;
  concatMedianMs: number;
  pagedMedianMs: number;
}

interface Row extends Times {
  backend: string;
  batch: number;
  context: number;
}

/** Old and new paths alternate step by step, so both see the same load on a shared machine. */
async function measure(batch: number, context: number, steps: number): Promise<Times> {
  const inputs = () => [tf.tensor2d(rand(batch * H * D), [batch, H * D]), tf.tensor2d(rand(batch * Hk * D), [batch, Hk * D]), tf.tensor2d(rand(batch * Hk * D), [batch, Hk * D])] as const;
  const ids = Array.from({ length: batch }, (_, i) => i);

  const base = new ConcatBaseline();
  for (const id of ids) base.fill(id, context);

  const perSeq = Math.ceil((context + steps + 1) / BLOCK);
  const cache = new PagedKVCache({ numBlocks: batch * perSeq, blockSize: BLOCK, numKvHeads: Hk, headDim: D, vHeadDim: D, valueIsKeyPrefix: false });
  // Interleaved blocks, as a pool shared by many sequences ends up.
  const tables = ids.map((id) => Array.from({ length: perSeq }, (_, b) => b * batch + id));
  const slots = (id: number, from: number, n: number) => Array.from({ length: n }, (_, i) => tables[id]![Math.floor((from + i) / BLOCK)]! * BLOCK + ((from + i) % BLOCK));
  for (const id of ids) cache.write(slots(id, 0, context), rand(context * Hk * D), rand(context * Hk * D));
  const attn = new Attention({ numHeads: H, numKvHeads: Hk, headDim: D, scale: D ** -0.5 });

  const concat: number[] = [];
  const paged: number[] = [];
  for (let s = 0; s < steps; s++) {
    {
      const [q, k, v] = inputs();
      const t0 = performance.now();
      const out = base.step(q, k, v, ids);
      await out.data();
      concat.push(performance.now() - t0);
      tf.dispose([q, k, v, out]);
    }
    {
      const [q, k, v] = inputs();
      const meta = buildAttentionMetadata(
        ids.map((id) => ({ seqId: id, queryLen: 1, contextLen: context + s, blockTable: tables[id]! })),
        BLOCK,
      );
      const t0 = performance.now();
      const out = await attn.forward(q, k, v, meta, cache);
      await out.data();
      paged.push(performance.now() - t0);
      tf.dispose([q, k, v, out]);
    }
  }
  base.dispose();
  cache.dispose();
  // The first steps warm up kernels and caches.
  const warm = Math.min(2, steps - 1);
  const [c, p] = [concat.slice(warm), paged.slice(warm)];
  return { concatMinMs: Math.min(...c), pagedMinMs: Math.min(...p), concatMedianMs: median(c), pagedMedianMs: median(p) };
}

async function main(): Promise<void> {
  const backend = arg('backend', 'wasm') as BackendName;
  const steps = Number(arg('steps', '12'));
  const info = await initBackend({ prefer: backend });
  const rows: Row[] = [];
  for (const batch of [1, 16]) {
    for (const context of [64, 256, 1024]) {
      const r = await measure(batch, context, steps);
      rows.push({ backend: info.name, batch, context, ...r });
      const f = (x: number) => x.toFixed(2).padStart(8);
      console.log(
        `${info.name}\tbatch ${String(batch).padStart(2)}\tcontext ${String(context).padStart(4)}\t` +
          `min: concat ${f(r.concatMinMs)} ms  paged ${f(r.pagedMinMs)} ms  ×${(r.concatMinMs / r.pagedMinMs).toFixed(2)}\t` +
          `median: concat ${f(r.concatMedianMs)} ms  paged ${f(r.pagedMedianMs)} ms  ×${(r.concatMedianMs / r.pagedMedianMs).toFixed(2)}`,
      );
    }
  }
  console.log(JSON.stringify({ shape: { H, Hk, D, blockSize: BLOCK }, steps, rows }));
}

void main();
