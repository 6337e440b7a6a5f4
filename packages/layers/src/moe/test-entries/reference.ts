/**
 * Test helpers shared by the MoE tests and their rank entries: a MoE block's
 * checkpoint (Hugging Face names, deterministic random values), an in-memory
 * checkpoint reader that records what was read, a plain-JS port of Hugging
 * Face's routing (independent of router.ts), and the dense single-rank MoE.
 */
import * as tf from '@tensorflow/tfjs-core';
import { narrowHost, type HostTensor } from '../../parameter.js';
import { randomHost } from '../../test-entries/random.js';
import type { CheckpointReader } from '../../weight-loading.js';

export interface MoECase {
  name: string;
  H: number;
  I: number;
  E: number;
  topK: number;
  scoring: 'softmax' | 'sigmoid';
  method?: 'greedy' | 'group_limited_greedy' | 'noaux_tc';
  nGroup?: number;
  topkGroup?: number;
  renormalize: boolean;
  scale?: number;
  bias: boolean;
  nShared: number;
  /** Compute the router logits with the gate instead of passing them in. */
  useGate: boolean;
  /** Tokens of each DP replica (TP peers share them). */
  tokens: number[];
  dispatch?: 'allgather' | 'alltoall';
  placement?: 'linear' | 'round_robin';
  /** false: FusedMoE leaves TP partial sums and the rank entry all-reduces them itself. */
  reduceResults?: boolean;
  /** Load gate_up from one already-fused tensor instead of gate_proj + up_proj. */
  fusedCheckpoint?: boolean;
}

export const PREFIX = 'model.layers.1.mlp';

function seedOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h || 1;
}

/** Every checkpoint tensor of the MoE block of `c`, by Hugging Face name. */
export function moeCheckpoint(c: MoECase): Map<string, HostTensor> {
  const m = new Map<string, HostTensor>();
  const add = (name: string, shape: number[], scale = 0.5) => m.set(name, randomHost(shape, seedOf(`${c.name}/${name}`), scale));
  add(`${PREFIX}.gate.weight`, [c.E, c.H]);
  if (c.bias) add(`${PREFIX}.gate.e_score_correction_bias`, [c.E], 0.4);
  for (let e = 0; e < c.E; e++) {
    for (const p of ['gate_proj', 'up_proj']) add(`${PREFIX}.experts.${e}.${p}.weight`, [c.I, c.H]);
    add(`${PREFIX}.experts.${e}.down_proj.weight`, [c.H, c.I]);
  }
  if (c.nShared > 0) {
    const Is = c.I * c.nShared;
    for (const p of ['gate_proj', 'up_proj']) add(`${PREFIX}.shared_experts.${p}.weight`, [Is, c.H]);
    add(`${PREFIX}.shared_experts.down_proj.weight`, [c.H, Is]);
  }
  if (c.fusedCheckpoint) {
    // transformers-5 style: gate|up of each expert already concatenated.
    for (let e = 0; e < c.E; e++) {
      const g = m.get(`${PREFIX}.experts.${e}.gate_proj.weight`)!;
      const u = m.get(`${PREFIX}.experts.${e}.up_proj.weight`)!;
      const data = new Float32Array(g.data.length * 2);
      data.set(g.data, 0);
      data.set(u.data, g.data.length);
      m.delete(`${PREFIX}.experts.${e}.gate_proj.weight`);
      m.delete(`${PREFIX}.experts.${e}.up_proj.weight`);
      m.set(`${PREFIX}.experts.${e}.gate_up_proj.weight`, { shape: [2 * c.I, c.H], dtype: 'float32', data });
    }
  }
  return m;
}

/** A CheckpointReader over host tensors; `touched` lists every tensor read (whole or narrowed). */
export function memoryCheckpoint(tensors: Map<string, HostTensor>): CheckpointReader & { touched: string[] } {
  const touched: string[] = [];
  const get = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return t;
  };
  return {
    touched,
    names: () => [...tensors.keys()],
    info: (name) => ({ shape: get(name).shape }),
    read: (name) => (touched.push(name), get(name)),
    narrow: (name, dim, start, length) => (touched.push(name), narrowHost(get(name), dim, start, length, name)),
  };
}

/** Hidden states [T, H] of DP replica `replica` (identical on its TP peers). */
export function caseHidden(c: MoECase, replica: number): HostTensor {
  return randomHost([c.tokens[replica]!, c.H], seedOf(`${c.name}/x${replica}`), 1);
}

/** Router logits [T, E] of DP replica `replica` (used when the case does not route with the gate). */
export function caseLogits(c: MoECase, replica: number): HostTensor {
  return randomHost([c.tokens[replica]!, c.E], seedOf(`${c.name}/logits${replica}`), 3);
}

export interface RefRouting {
  topK: number;
  scoring: 'softmax' | 'sigmoid';
  method?: 'greedy' | 'group_limited_greedy' | 'noaux_tc';
  nGroup?: number;
  topkGroup?: number;
  renormalize: boolean;
  scale?: number;
  bias?: ArrayLike<number> | null;
}

/**
 * Hugging Face routing written out with loops (DeepseekV3MoE.route_tokens_to_experts,
 * DeepseekV2Moe.route_tokens_to_experts), in double precision. Ties: lowest index first.
 */
export function referenceRoute(logits: ArrayLike<number>, T: number, E: number, cfg: RefRouting): { ids: Int32Array; weights: Float32Array } {
  const K = cfg.topK;
  const bias = cfg.bias ?? null;
  const method = cfg.method ?? (bias ? 'noaux_tc' : (cfg.nGroup ?? 1) > 1 ? 'group_limited_greedy' : 'greedy');
  const nGroup = cfg.nGroup ?? 1;
  const topkGroup = cfg.topkGroup ?? nGroup;
  const per = E / nGroup;
  const ids = new Int32Array(T * K);
  const weights = new Float32Array(T * K);
  const byValue = (v: number[]) => (a: number, b: number) => (v[b]! - v[a]!) || a - b;
  for (let t = 0; t < T; t++) {
    const row = Array.from({ length: E }, (_, e) => logits[t * E + e]!);
    let s: number[];
    if (cfg.scoring === 'softmax') {
      const mx = Math.max(...row);
      const ex = row.map((v) => Math.exp(v - mx));
      const sum = ex.reduce((a, b) => a + b, 0);
      s = ex.map((v) => v / sum);
    } else {
      s = row.map((v) => 1 / (1 + Math.exp(-v)));
    }
    let choice = bias ? s.map((v, e) => v + bias[e]!) : [...s];
    if (method !== 'greedy' && topkGroup < nGroup) {
      const topTwo = method === 'noaux_tc' || !!bias;
      const g = Array.from({ length: nGroup }, (_, gi) => {
        const vals = choice.slice(gi * per, (gi + 1) * per).sort((a, b) => b - a);
        return topTwo ? vals[0]! + vals[1]! : vals[0]!;
      });
      const kept = new Set(Array.from({ length: nGroup }, (_, i) => i).sort(byValue(g)).slice(0, topkGroup));
      choice = choice.map((v, e) => (kept.has(Math.floor(e / per)) ? v : 0));
    }
    const chosen = Array.from({ length: E }, (_, i) => i).sort(byValue(choice)).slice(0, K);
    const gatherUnbiased = !!bias || method === 'noaux_tc';
    let w = chosen.map((e) => (gatherUnbiased ? s[e]! : choice[e]!));
    if (cfg.renormalize) {
      const sum = w.reduce((a, b) => a + b, 0) + 1e-20;
      w = w.map((v) => v / sum);
    }
    w = w.map((v) => v * (cfg.scale ?? 1));
    chosen.forEach((e, k) => {
      ids[t * K + k] = e;
      weights[t * K + k] = w[k]!;
    });
  }
  return { ids, weights };
}

export function caseRouting(c: MoECase, ckpt: Map<string, HostTensor>): RefRouting {
  return {
    topK: c.topK,
    scoring: c.scoring,
    method: c.method,
    nGroup: c.nGroup,
    topkGroup: c.topkGroup,
    renormalize: c.renormalize,
    scale: c.scale,
    bias: c.bias ? ckpt.get(`${PREFIX}.gate.e_score_correction_bias`)!.data : null,
  };
}

/**
 * The MoE block on one rank, densely: every expert on every token, combined with the
 * routing weights, plus the shared experts. Returns [T·H] values for DP replica `replica`.
 */
export function denseMoE(c: MoECase, replica: number): Float32Array {
  const ckpt = moeCheckpoint({ ...c, fusedCheckpoint: false });
  const T = c.tokens[replica]!;
  if (T === 0) return new Float32Array(0);
  return tf.tidy(() => {
    const w = (name: string) => {
      const h = ckpt.get(`${PREFIX}.${name}`)!;
      return tf.tensor2d(h.data as Float32Array, h.shape as [number, number]);
    };
    const x = tf.tensor(caseHidden(c, replica).data, [T, c.H]) as tf.Tensor2D;
    const logits = c.useGate ? tf.matMul(x, w('gate.weight'), false, true) : tf.tensor(caseLogits(c, replica).data, [T, c.E]);
    const route = referenceRoute(logits.dataSync(), T, c.E, caseRouting(c, ckpt));
    const dense = new Float32Array(T * c.E);
    for (let t = 0; t < T; t++) for (let k = 0; k < c.topK; k++) dense[t * c.E + route.ids[t * c.topK + k]!]! += route.weights[t * c.topK + k]!;
    const mlp = (p: string) => {
      const g = tf.matMul(x, w(`${p}.gate_proj.weight`), false, true);
      const u = tf.matMul(x, w(`${p}.up_proj.weight`), false, true);
      return tf.matMul(tf.mul(tf.mul(g, tf.sigmoid(g)), u), w(`${p}.down_proj.weight`), false, true);
    };
    const wd = tf.tensor2d(dense, [T, c.E]);
    let out: tf.Tensor = tf.zeros([T, c.H]);
    for (let e = 0; e < c.E; e++) out = tf.add(out, tf.mul(mlp(`experts.${e}`), tf.slice(wd, [0, e], [T, 1])));
    if (c.nShared > 0) out = tf.add(out, mlp('shared_experts'));
    return (out.dataSync() as Float32Array).slice();
  });
}
