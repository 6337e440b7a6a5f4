/**
 * Each of weft's WebGPU kernels against the stock tfjs ops it replaces, at the
 * shapes of one batch-1 decode step of a Llama (bench:gpu). Both sides run in
 * this thread on the webgpu backend; "stock" is the same op with
 * WEFT_WEBGPU_KERNELS=0, which is exactly what weft ran before its kernels.
 * A timing is `count` calls (as many as one step makes) and one read-back,
 * median of 7. Also tfjs's own cost per op, by submit batch size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@weft/core';
import type { LlamaShape } from './random-checkpoint.js';
import { Attention, RotaryEmbedding, configureWebgpuKernels, linearOp, rmsNormOp, setSmallMTiling, siluAndMulOp } from '@weft/layers';

/** A Llama shape (random-checkpoint.ts) plus the head size and the KV length the decode attention reads. */
export interface ProfileShape extends Omit<LlamaShape, 'name'> {
  headDim: number;
  context: number;
}

interface KernelRow {
  op: string;
  count: number;
  stockMs: number;
  weftMs: number;
}

async function timeMs(count: number, call: () => tf.Tensor): Promise<number> {
  const once = async () => {
    const outs: tf.Tensor[] = [];
    for (let c = 0; c < count; c++) outs.push(call());
    await outs[outs.length - 1]!.data();
    tf.dispose(outs);
  };
  await once();
  await once();
  const times: number[] = [];
  for (let r = 0; r < 7; r++) {
    const s = performance.now();
    await once();
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  return +times[3]!.toFixed(3);
}

async function stockAndWeft(op: string, count: number, call: () => tf.Tensor, log: (m: string) => void): Promise<KernelRow> {
  configureWebgpuKernels({ kernels: false });
  const stockMs = await timeMs(count, call);
  configureWebgpuKernels({ kernels: true });
  const weftMs = await timeMs(count, call);
  const row = { op, count, stockMs, weftMs };
  log(JSON.stringify(row));
  return row;
}

export async function profileKernels(s: ProfileShape, log: (m: string) => void): Promise<Record<string, unknown>> {
  const info = await initBackend({ prefer: 'webgpu' });
  const { hidden: H, intermediate: I, headDim: D } = s;
  const qkvOut = (s.heads + 2 * s.kvHeads) * D;
  const kernels: KernelRow[] = [];
  const held: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T) => (held.push(t), t);

  // GEMVs, weights [in, out] as weft keeps them; the stock side is tfjs's packed matmul (weft's setting).
  const gemvs: [string, number, number, number][] = [
    ['qkv_proj', H, qkvOut, s.layers],
    ['o_proj', H, H, s.layers],
    ['gate_up_proj', H, 2 * I, s.layers],
    ['down_proj', I, H, s.layers],
    ['lm_head', H, s.vocab, 1],
  ];
  const tilings: [number, number][] = [[8, 32], [4, 64], [2, 128], [1, 256]];
  const tilingMs: Record<string, number> = {};
  for (const [name, k, n, count] of gemvs) {
    const w = keep(tf.randomNormal([k, n], 0, 0.02) as tf.Tensor2D);
    const x = keep(tf.randomNormal([1, k]) as tf.Tensor2D);
    kernels.push(await stockAndWeft(`${name} [1×${k}]·[${k}×${n}]`, count, () => linearOp(x, w), log));
    for (const [l, sl] of tilings) {
      setSmallMTiling(l, sl);
      tilingMs[`${l}x${sl}`] = +((tilingMs[`${l}x${sl}`] ?? 0) + (await timeMs(count, () => linearOp(x, w)))).toFixed(3);
    }
    setSmallMTiling(4, 64);
  }
  log(`small-M matmul tilings (lanes x slices), ms for all GEMVs of a step: ${JSON.stringify(tilingMs)}`);
  const x16 = keep(tf.randomNormal([16, H]) as tf.Tensor2D);
  const wGateUp = keep(tf.randomNormal([H, 2 * I], 0, 0.02) as tf.Tensor2D);
  kernels.push(await stockAndWeft(`gate_up_proj batch 16 [16×${H}]·[${H}×${2 * I}]`, s.layers, () => linearOp(x16, wGateUp), log));

  const h1 = keep(tf.randomNormal([1, H]) as tf.Tensor2D);
  const normW = keep(tf.randomNormal([H]) as tf.Tensor1D);
  kernels.push(await stockAndWeft(`rms_norm [1×${H}]`, 2 * s.layers + 1, () => rmsNormOp(h1, normW, 1e-5), log));
  {
    // The same kernel through tfjs's runWebGPUProgram, then through weft's lean dispatch.
    configureWebgpuKernels({ lean: false });
    const stockMs = await timeMs(2 * s.layers + 1, () => rmsNormOp(h1, normW, 1e-5));
    configureWebgpuKernels({ lean: true });
    const weftMs = await timeMs(2 * s.layers + 1, () => rmsNormOp(h1, normW, 1e-5));
    kernels.push({ op: 'rms_norm dispatch: runWebGPUProgram → lean', count: 2 * s.layers + 1, stockMs, weftMs });
    log(JSON.stringify(kernels[kernels.length - 1]));
  }
  const gu = keep(tf.randomNormal([1, 2 * I]) as tf.Tensor2D);
  kernels.push(await stockAndWeft(`silu_and_mul [1×${2 * I}]`, s.layers, () => siluAndMulOp(gu), log));

  const rope = new RotaryEmbedding({ headSize: D, rotaryDim: D, maxPosition: s.context + 64, base: 10000, isNeoxStyle: true });
  const qkv = keep(tf.randomNormal([1, qkvOut]) as tf.Tensor2D);
  const pos = keep(tf.tensor1d([s.context], 'int32'));
  kernels.push(await stockAndWeft('rotary q + k (from fused qkv)', s.layers, () => tf.tidy(() => {
    const q = rope.rotateColumns(pos, qkv, 0, s.heads);
    const k = rope.rotateColumns(pos, qkv, s.heads * D, s.kvHeads);
    return tf.add(tf.sum(q), tf.sum(k));
  }), log));
  rope.dispose();

  const attn = new Attention({ numHeads: s.heads, numKvHeads: s.kvHeads, headDim: D, scale: D ** -0.5 });
  const q = keep(tf.randomNormal([1, s.heads * D]) as tf.Tensor2D);
  const kc = keep(tf.randomNormal([s.context + 1, s.kvHeads, D]) as tf.Tensor3D);
  const vc = keep(tf.randomNormal([s.context + 1, s.kvHeads, D]) as tf.Tensor3D);
  const attend = (attn as unknown as { attendSequence(q: tf.Tensor2D, k: tf.Tensor3D, v: tf.Tensor3D, c: number): tf.Tensor2D }).attendSequence.bind(attn);
  kernels.push(await stockAndWeft(`decode attention over ${s.context + 1} keys`, s.layers, () => tf.tidy(() => attend(q, kc, vc, s.context)), log));
  tf.dispose(held);

  // tfjs's fixed cost per op: a chain of tiny adds, by how many dispatches it submits at once.
  const perOpUs: Record<string, number> = {};
  const a = tf.randomNormal([1, H]);
  for (const batch of [15, 32, 64, 128]) {
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batch);
    const n = 1000;
    const run = async () => {
      let y = tf.add(a, a);
      for (let i = 1; i < n; i++) {
        const z = tf.add(y, a);
        y.dispose();
        y = z;
      }
      await y.data();
      y.dispose();
    };
    await run();
    const t0 = performance.now();
    await run();
    perOpUs[String(batch)] = +(((performance.now() - t0) / n) * 1000).toFixed(1);
  }
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 15);
  a.dispose();
  log(`tfjs µs per op by submit batch: ${JSON.stringify(perOpUs)}`);
  return { backend: info, kernels, smallMTilingMsPerStep: tilingMs, perOpUs };
}
