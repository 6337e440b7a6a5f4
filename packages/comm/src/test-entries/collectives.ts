/** Every collective of one group against the dense result computed locally from every rank's inputs. */
import * as tf from '@tensorflow/tfjs-core';
import type { RankContext } from '../launcher.js';
import { assert, expectArrayEqual, expectEqual, input, values } from './check.js';

type Dtype = 'float32' | 'int32';
const DTYPES: Dtype[] = ['float32', 'int32'];

export interface CollectivesReport {
  checks: number;
  /** Hash of the bits of a float allReduce: must be the same on every rank. */
  floatBits: number;
  tensorsBefore: number;
  tensorsAfter: number;
}

export async function main(ctx: RankContext): Promise<CollectivesReport> {
  const g = ctx.state.tp;
  const ws = g.worldSize;
  const me = g.rankInGroup;
  const ranks = Array.from({ length: ws }, (_, r) => r);
  let checks = 0;
  const check = async (what: string, got: tf.Tensor | null, want: tf.Tensor, input?: tf.Tensor) => {
    await expectEqual(`rank ${ctx.rank} ${what}`, got, want);
    if (ws === 1 && input) assert(got === input, `${what}: world size 1 must return the input itself`);
    if (got !== input) got?.dispose();
    want.dispose();
    input?.dispose();
    checks++;
  };
  const all = (shape: number[], dtype: Dtype, salt: number) => ranks.map((r) => input(r, shape, dtype, salt));

  /** One pass over every collective; repeated to check that no tensor leaks. */
  const battery = async (salt: number) => {
    // allReduce, both ops, both dtypes, odd sizes, one-shot and two-shot, larger than the scratch slot
    for (const dtype of DTYPES) {
      for (const shape of [[7], [3, 13 * ws, 5], [13 * ws * 333]]) {
        for (const op of ['sum', 'max'] as const) {
          const want = tf.tidy(() => {
            const xs = all(shape, dtype, salt);
            return op === 'sum' ? tf.addN(xs) : tf.max(tf.stack(xs), 0);
          });
          const x = input(me, shape, dtype, salt);
          await check(`allReduce ${op} ${dtype} [${shape.join(', ')}]`, await g.allReduce(x, op), want, x);
        }
      }
    }
    // allGather on every dim
    for (const dtype of DTYPES) {
      const shape = [3, 13, 5];
      for (const dim of [0, 1, 2, -1, -2]) {
        const want = tf.tidy(() => tf.concat(all(shape, dtype, salt + dim), dim));
        const x = input(me, shape, dtype, salt + dim);
        await check(`allGather ${dtype} dim ${dim}`, await g.allGather(x, dim), want, x);
      }
      const big = [2, 13 * 300];
      const want = tf.tidy(() => tf.concat(all(big, dtype, salt), -1));
      const x = input(me, big, dtype, salt);
      await check(`allGather ${dtype} large`, await g.allGather(x), want, x);
    }
    // reduceScatter on every dim
    for (const dtype of DTYPES) {
      for (const [dim, shape] of [
        [0, [2 * ws, 13, 5]],
        [1, [3, 13 * ws, 5]],
        [-1, [3, 13, 5 * ws]],
        [-1, [2, 13 * 300 * ws]],
      ] as [number, number[]][]) {
        const want = tf.tidy(() => tf.split(tf.addN(all(shape, dtype, salt)), ws, dim)[me]!);
        const x = input(me, shape, dtype, salt);
        await check(`reduceScatter ${dtype} dim ${dim} [${shape.join(', ')}]`, await g.reduceScatter(x, dim), want, x);
      }
    }
    // gather to the last rank and to rank 0
    for (const dtype of DTYPES) {
      for (const [dst, dim] of [
        [ws - 1, 0],
        [0, -1],
        [ws - 1, 1],
      ] as [number, number][]) {
        const shape = [3, 13, 5];
        const x = input(me, shape, dtype, salt);
        const got = await g.gather(x, dst, dim);
        if (me === dst) {
          const want = tf.tidy(() => tf.concat(all(shape, dtype, salt), dim));
          await check(`gather ${dtype} dst ${dst} dim ${dim}`, got, want, x);
        } else {
          assert(got === null, `rank ${ctx.rank} gather: non-destination got a tensor`);
          x.dispose();
          checks++;
        }
      }
    }
    // broadcast from the last rank and rank 0: receivers pass null and learn shape and dtype
    for (const dtype of DTYPES) {
      for (const [src, shape] of [
        [ws - 1, [3, 13, 5]],
        [0, [40, 13 * 10 * ws]],
      ] as [number, number[]][]) {
        const x = me === src ? input(src, shape, dtype, salt) : null;
        const got = await g.broadcast(x, src);
        await check(`broadcast ${dtype} src ${src}`, got, input(src, shape, dtype, salt), x ?? undefined);
      }
    }
    // allToAll: uneven row counts, empty chunks, some larger than a slot piece
    for (const dtype of DTYPES) {
      const rows = (from: number, to: number) => ((from + 2 * to) % 4) + ((from + to) % 3 === 0 ? 150 : 0) * (salt % 2);
      const chunk = (from: number, to: number) => input(from * 100 + to, [rows(from, to), 3], dtype, salt);
      const chunks = ranks.map((j) => chunk(me, j));
      const got = await g.allToAll(chunks);
      assert(got.length === ws, 'allToAll result length');
      for (let i = 0; i < ws; i++) await check(`allToAll ${dtype} from ${i}`, got[i]!, chunk(i, me), chunks[i]);
    }
    // send/recv down a chain (PP style; messages larger than the ring still flow) and around a ring (small ones)
    {
      const shape = [3, 13 * ws, 5];
      if (ws === 1) {
        const x = input(me, shape, 'float32', salt);
        await g.send(x);
        await check('send/recv to oneself', await g.recv(), input(me, shape, 'float32', salt));
        x.dispose();
      } else {
        if (me > 0) await check('recv chain', await g.recv(me - 1), input(me - 1, shape, 'float32', salt));
        if (me < ws - 1) {
          const x = input(me, shape, 'float32', salt);
          await g.send(x, me + 1);
          x.dispose();
        }
        const small = input(me, [2, 3], 'int32', salt);
        await g.send(small);
        await check('recv ring', await g.recv(), input((me - 1 + ws) % ws, [2, 3], 'int32', salt));
        small.dispose();
      }
    }
    // tensor dicts, PP style
    {
      const dict = (r: number) => ({
        hidden_states: input(r, [4, 13 * ws], 'float32', salt),
        residual: input(r, [4, 13 * ws], 'float32', salt + 1),
        positions: input(r, [4], 'int32', salt + 2),
        step: 7 + r,
        tag: `ränk ${r}`,
        none: null,
      });
      const compare = async (got: Record<string, unknown>, from: number) => {
        const want = dict(from);
        for (const k of ['hidden_states', 'residual', 'positions'] as const) await check(`tensor dict ${k}`, got[k] as tf.Tensor, want[k]);
        assert(got.step === want.step && got.tag === want.tag && got.none === null, `tensor dict values: ${JSON.stringify([got.step, got.tag, got.none])}`);
        assert(Object.keys(got).join() === Object.keys(want).join(), `tensor dict keys ${Object.keys(got).join()}`);
      };
      const mine = dict(me);
      if (ws === 1) {
        await g.sendTensorDict(mine);
        await compare(await g.recvTensorDict(), me);
      } else {
        if (me > 0) await compare(await g.recvTensorDict(), me - 1);
        if (me < ws - 1) await g.sendTensorDict(mine);
      }
      for (const v of Object.values(mine)) if (v instanceof tf.Tensor) v.dispose();
    }
    // objects: through the message queue (src 0) and the CPU group (src last)
    for (const src of [0, ws - 1]) {
      const obj = { from: src, salt, text: 'héllo ✓', nested: [1, [2, { three: 3 }]], none: null };
      const got = await g.broadcastObject(me === src ? obj : undefined, src);
      assert(JSON.stringify(got) === JSON.stringify(obj), `rank ${ctx.rank} broadcastObject src ${src}: ${JSON.stringify(got)}`);
      checks++;
    }
    const world = await ctx.state.world.broadcastObject(ctx.rank === 0 ? { step: salt } : undefined);
    assert((world as { step: number }).step === salt, 'world broadcastObject');
    await g.barrier();
    checks++;
  };

  // the raw Communicator, once
  {
    const c = g.cpuGroup;
    const data = Float32Array.from(values(me, 13, 1));
    const gathered = await c.gather(data, 0);
    if (me === 0) expectArrayEqual('raw gather', gathered!, Float32Array.from(ranks.flatMap((r) => values(r, 13, 1))));
    else assert(gathered === null, 'raw gather off dst');
    const b = await c.broadcast(me === 0 ? Int32Array.of(1, 2, 3) : null, 0);
    assert(b instanceof Int32Array, 'raw broadcast keeps Int32Array');
    expectArrayEqual('raw broadcast', b, [1, 2, 3]);
    const a2a = await c.allToAll(ranks.map((j) => (j % 2 === 0 ? new Int32Array(0) : Int32Array.of(me, j))));
    for (let i = 0; i < ws; i++) expectArrayEqual(`raw allToAll from ${i}`, a2a[i]!, me % 2 === 0 ? [] : [i, me]);
    if (ws === 1) assert((await c.allReduce(data)) === data, 'raw ws1 allReduce returns its input');
    else assert((await c.allReduce(data)) !== data, 'raw allReduce returns a new array');
    checks += 4;
  }
  // non-integer floats: close to the dense sum, and bit-identical on every rank
  let floatBits = 0;
  {
    const n = 5003;
    const noise = (r: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(r * 1000 + i) * 1e3);
    const inputs = ranks.map(noise);
    const got = (await g.cpuGroup.allReduce(inputs[me]!)) as Float32Array;
    const bits = new Int32Array(got.buffer, got.byteOffset, got.length);
    for (let i = 0; i < n; i++) {
      let want = 0;
      for (const x of inputs) want += x[i]!;
      if (Math.abs(got[i]! - want) > 1e-3 * Math.max(1, Math.abs(want))) throw new Error(`float allReduce element ${i}: ${got[i]} vs ${want}`);
    }
    for (let i = 0; i < n; i++) floatBits = (floatBits * 31 + bits[i]!) | 0;
  }

  await battery(1);
  const tensorsBefore = tf.memory().numTensors;
  await battery(2);
  return { checks, floatBits, tensorsBefore, tensorsAfter: tf.memory().numTensors };
}
