/**
 * Rank entry of bench:moe: builds a DeepSeek MoE block (or a whole small
 * DeepSeek model) with random weights on this rank's share, times forwards,
 * and counts the bytes its collectives move.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator, ParallelState, RankContext } from '@weft/comm';
import { parseModelConfig, type DeepseekConfig } from '@weft/core';
import { DeepseekForCausalLM } from '@weft/deepseek';
import { buildAttentionMetadata, FusedMoE, fusedMoEGroups, scoped, type DispatchMethod, type Parameter } from '@weft/layers';

export interface MoeBenchArgs {
  kind: 'layer' | 'model';
  config: Record<string, unknown>;
  dispatch: DispatchMethod;
  tokens: number;
  iters: number;
}

/** Counts bytes handed to (and returned by) collectives of the wrapped groups. */
class ByteCounter {
  bytes = 0;
  wrap(g: GroupCoordinator): GroupCoordinator {
    return new Proxy(g, {
      get: (target, prop, recv) => {
        const v = Reflect.get(target, prop, recv) as unknown;
        if (typeof v !== 'function' || typeof prop !== 'string' || !/^(allReduce|allGather|reduceScatter|allToAll|gather|broadcast|send|recv)/.test(prop)) return v;
        return async (...args: unknown[]) => {
          for (const a of args.flat()) if (a instanceof tf.Tensor) this.bytes += a.size * 4;
          return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
  }
}

function randomize(params: Parameter[]): void {
  for (const p of params) {
    const isNorm = p.name.includes('norm');
    p.assign(isNorm ? tf.ones([...p.shape]) : tf.tidy(() => tf.mul(tf.randomNormal([...p.shape]), 0.02)));
  }
}

export async function main(ctx: RankContext): Promise<{ msPerStep: number; bytesPerStep: number }> {
  const args = ctx.args as MoeBenchArgs;
  const counter = new ByteCounter();
  const state: ParallelState = { ...ctx.state, tp: counter.wrap(ctx.state.tp), ep: counter.wrap(ctx.state.ep), dp: counter.wrap(ctx.state.dp) };
  const config = parseModelConfig(args.config, 'bench') as DeepseekConfig;
  // Every DP replica serves its own tokens; tp peers share theirs.
  let run: () => Promise<void>;
  let dispose: () => void;
  if (args.kind === 'layer') {
    const { tp, ep } = fusedMoEGroups(state);
    const moe = new FusedMoE({
      prefix: 'mlp', hiddenSize: config.hiddenSize, intermediateSize: config.moeIntermediateSize, numExperts: config.nRoutedExperts,
      routing: { topK: config.numExpertsPerTok, scoring: config.scoringFunc, nGroup: config.nGroup, topkGroup: config.topkGroup, renormalize: false, routedScalingFactor: config.routedScalingFactor, method: config.topkMethod },
      numSharedExperts: config.nSharedExperts, tp, ep, dispatch: args.dispatch,
    });
    randomize(moe.parameters());
    const x = tf.randomNormal([args.tokens, config.hiddenSize]) as tf.Tensor2D;
    run = () => scoped(async () => void (await moe.forward(x)));
    dispose = () => { moe.dispose(); x.dispose(); };
  } else {
    const model = new DeepseekForCausalLM(config, state, { dispatch: args.dispatch });
    randomize(model.parameters());
    const meta = buildAttentionMetadata(Array.from({ length: args.tokens }, (_, i) => ({ seqId: i, queryLen: 1, contextLen: 0 })));
    const ids = tf.tensor1d(Array.from({ length: args.tokens }, (_, i) => (i * 31) % config.vocabSize), 'int32');
    const pos = tf.zeros([args.tokens], 'int32') as tf.Tensor1D;
    run = () => scoped(async () => void (await model.forward({ inputIds: ids, positions: pos, meta, useCache: false }, null)));
    dispose = () => { model.dispose(); tf.dispose([ids, pos]); };
  }
  await run(); // warm-up
  counter.bytes = 0;
  await ctx.state.world.barrier();
  const t0 = performance.now();
  for (let i = 0; i < args.iters; i++) await run();
  const ms = (performance.now() - t0) / args.iters;
  const bytes = counter.bytes / args.iters;
  dispose();
  return { msPerStep: ms, bytesPerStep: bytes };
}
