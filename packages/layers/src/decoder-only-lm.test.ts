/** The rank's side of the KV-cache contract: one spec per attention layer of its stage, caches bound before a cached forward. */
import '@tensorflow/tfjs-backend-cpu';
import type * as tf from '@tensorflow/tfjs-core';
import type { ParallelState } from '@weft/comm';
import { describe, expect, it } from 'vitest';
import type { AttentionMetadata } from './attention-metadata.js';
import { buildAttentionMetadata } from './attention-metadata.js';
import { Attention } from './attention.js';
import { DecoderOnlyLM, type ChannelMixer, type TokenMixer } from './decoder-only-lm.js';
import { freeableWindow, PagedKVCache, type KVCacheSpec } from './paged-kv-cache.js';

/** Layer i: GQA with head size 8 + i (a sliding window of 16 on layers 0 and 4, Gemma 2 style), or (odd layers) an MLA-style latent head. */
function mixer(i: number): TokenMixer {
  const attn =
    i % 2 === 0
      ? new Attention({ numHeads: 4, numKvHeads: 2, headDim: 8 + i, scale: 1, slidingWindow: i % 4 === 0 ? 16 : null })
      : new Attention({ numHeads: 4, numKvHeads: 1, headDim: 12, vHeadDim: 8, valueIsKeyPrefix: true, scale: 1 });
  return {
    kvCacheSpec: attn.kvCacheSpec,
    forward: (_p: tf.Tensor1D, h: tf.Tensor2D, _m: AttentionMetadata, _c: PagedKVCache | null) => Promise.resolve(h.clone()),
    parameters: () => [],
    dispose: () => {},
  };
}

const mlp: ChannelMixer = { forward: (x) => Promise.resolve(x.clone()), parameters: () => [], dispose: () => {} };

/** pp stage `rank` of `size` over 5 layers; tp world size 1. */
function stage(rank: number, size: number): DecoderOnlyLM {
  const state = {
    pp: { rankInGroup: rank, worldSize: size, isFirstRank: rank === 0, isLastRank: rank === size - 1 },
    tp: { rankInGroup: 0, worldSize: 1 },
    config: {},
  } as unknown as ParallelState;
  const config = { vocabSize: 10, hiddenSize: 4, numHiddenLayers: 5, rmsNormEps: 1e-6, tieWordEmbeddings: false };
  return new DecoderOnlyLM(config, state, (i) => ({ selfAttn: mixer(i), mlp }), []);
}

describe('DecoderOnlyLM and its paged KV caches', () => {
  it('lists one spec per attention layer of its pipeline stage, in layer order', () => {
    const gqa = (i: number): KVCacheSpec => ({ numKvHeads: 2, headDim: 8 + i, vHeadDim: 8 + i, valueIsKeyPrefix: false, slidingWindow: i % 4 === 0 ? 16 : null });
    const latent: KVCacheSpec = { numKvHeads: 1, headDim: 12, vHeadDim: 8, valueIsKeyPrefix: true, slidingWindow: null };
    expect(stage(0, 1).kvCacheSpecs()).toEqual([gqa(0), latent, gqa(2), latent, gqa(4)]);
    // 5 layers over 2 stages: 3 then 2 (vLLM's get_pp_indices: the remainder never goes to the last stage).
    expect(stage(0, 2).kvCacheSpecs()).toEqual([gqa(0), latent, gqa(2)]);
    expect(stage(1, 2).kvCacheSpecs()).toEqual([latent, gqa(4)]);
    // The engine frees blocks only behind a window every layer has.
    expect(freeableWindow(stage(0, 1).kvCacheSpecs().map((s) => s.slidingWindow))).toBeNull();
    expect(freeableWindow([16, 4096, 8])).toBe(4096);
    expect(freeableWindow([])).toBeNull();
  });

  it('binds caches that match, rejects ones that do not, and needs them for a cached forward', async () => {
    const m = stage(1, 2);
    const make = (specs: KVCacheSpec[], blockSize = 4) => specs.map((s) => new PagedKVCache({ ...s, numBlocks: 2, blockSize }));
    const input = { inputIds: null as unknown as tf.Tensor1D, positions: null as unknown as tf.Tensor1D, meta: buildAttentionMetadata([{ seqId: 0, queryLen: 1 }]), useCache: true };
    const hidden = { hidden_states: null as unknown as tf.Tensor2D, residual: null as unknown as tf.Tensor2D };
    await expect(m.forward(input, hidden)).rejects.toThrow(/call bindKVCaches\(caches\) first/);
    const specs = m.kvCacheSpecs();
    expect(() => m.bindKVCaches(make(specs.slice(1)))).toThrow(/this stage has 2 attention layers, got 1 caches/);
    expect(() => m.bindKVCaches(make([specs[1]!, specs[1]!]))).toThrow(/layer 3 needs .*"valueIsKeyPrefix":true.*its cache is for .*"valueIsKeyPrefix":false/);
    expect(() => m.bindKVCaches([...make(specs.slice(0, 1)), ...make(specs.slice(1), 8)])).toThrow(/one block size \(4 vs 8\)/);
    expect(() => m.bindKVCaches(make(specs))).not.toThrow();
    m.dispose();
  });
});
