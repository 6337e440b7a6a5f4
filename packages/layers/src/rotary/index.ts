/** Rotary position embeddings: `getRope` picks the variant from the model's rope parameters. */
import { RotaryEmbedding } from './rotary-embedding.js';
import type { RopeOptions } from './types.js';

export type { RopeOptions, RopeScaling, RopeType } from './types.js';
export { RotaryEmbedding, applyRotary, cosSinTable } from './rotary-embedding.js';
export { defaultInvFreq, linearInvFreq, llama3InvFreq, dynamicNtkInvFreq, ropePowers, type Llama3Params } from './frequencies.js';
export {
  yarnGetMscale,
  yarnFindCorrectionDim,
  yarnFindCorrectionRange,
  yarnAttentionFactor,
  yarnInvFreq,
  yarnSoftmaxScaleFactor,
  type YarnParams,
} from './yarn.js';

const shared = new Map<string, RotaryEmbedding>();

/**
 * vLLM's `get_rope`: equal options give the same instance, so the cos/sin cache
 * (`maxPosition × rotaryDim` floats, 64 MiB for Llama 3.1's 131072 × 128)
 * exists once per model, not once per layer. Each call is one owner: call
 * `dispose()` once per `getRope`, and the cache is freed after the last one.
 */
export function getRope(cfg: RopeOptions): RotaryEmbedding {
  const key = ropeKey(cfg);
  const hit = shared.get(key);
  if (hit && !hit.disposed) return hit.retain();
  const rope = new RotaryEmbedding(cfg);
  rope.onFree = () => {
    if (shared.get(key) === rope) shared.delete(key);
  };
  shared.set(key, rope);
  return rope;
}

function ropeKey(cfg: RopeOptions): string {
  const s = cfg.scaling;
  return JSON.stringify([
    cfg.headSize,
    cfg.rotaryDim,
    cfg.maxPosition,
    cfg.invFreqDtype ?? "float32",
    cfg.base ?? s?.theta,
    cfg.isNeoxStyle,
    s?.type ?? 'default',
    s?.factor,
    s?.lowFreqFactor,
    s?.highFreqFactor,
    s?.originalMaxPositionEmbeddings,
    s?.betaFast,
    s?.betaSlow,
    s?.mscale,
    s?.mscaleAllDim,
    s?.attentionFactor,
    s?.truncate,
  ]);
}
