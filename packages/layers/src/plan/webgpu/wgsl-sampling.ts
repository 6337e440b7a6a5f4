/**
 * The device sampler's kernel: one workgroup per sampled row, the engine's
 * sampler.ts in WGSL. The logits processors (logit bias, min-tokens masking:
 * one list of additions per row), penalties from the row's history slot
 * (prompt bitmask, output counts), then vLLM v1's order: temperature → min-p
 * → top-k → top-p (over what min-p and top-k kept) → one draw from
 * `uniform(seed, counter)` (the same u32 hash: WGSL's wrapping multiply is
 * Math.imul). No sort of the vocabulary: the candidates (wgsl-candidates.ts)
 * are prefixes in (key, id) order found by radix selects, or sorted in
 * workgroup memory when few. Without top-k and top-p the draw walks the kept
 * tokens in id order, as sampler.ts does. Logprobs are of the raw row, the
 * top ones merged from each thread's best (one pass).
 */
import type { PlanAct } from '../ops.js';
import { DEVICE_MAX_BIAS, DEVICE_MAX_LOGPROBS } from '../row-sampling.js';
import type { Binder } from './wgsl-common.js';
import { CANDIDATES_SHARED_BYTES, candidatesWgsl } from './wgsl-candidates.js';

/** u32 words of one row's parameters; flag bits of word 1. */
export const PARAM_WORDS = 16;
export const FLAG = { greedy: 1, indexOrder: 2, logprob: 4, penalties: 8, minP: 16, topP: 32, topK: 64 } as const;
/** u32 words of one row's result: token, its logprob, then (id, logprob) × DEVICE_MAX_LOGPROBS. */
export const OUT_WORDS = 2 + 2 * DEVICE_MAX_LOGPROBS;
/** Workgroup memory the kernel declares (bytes). */
export const SAMPLING_SHARED_BYTES = CANDIDATES_SHARED_BYTES;

export interface SamplingBuffers {
  params: GPUBuffer;
  /** Per row: DEVICE_MAX_BIAS (token id, f32 addition) pairs. */
  bias: GPUBuffer;
  out: GPUBuffer;
  /** Per row scratch, `[maxSeqs, vocab]`: keys (u32) and weights (u64 in units of 2^-43). */
  keys: GPUBuffer;
  weights: GPUBuffer;
  /** Per slot: output counts `[slots, vocab]` u32, prompt bitmask `[slots, ceil(vocab / 32)]`. */
  counts: GPUBuffer;
  prompt: GPUBuffer;
}

export function samplingWgsl(b: Binder, logits: PlanAct, vocab: number, buf: SamplingBuffers): string {
  const L = b.act(logits);
  const P = b.buffer(buf.params, 'sp', 'u32', 'read');
  const E = b.buffer(buf.bias, 'se', 'u32', 'read');
  const O = b.buffer(buf.out, 'so', 'u32', 'read_write');
  const K = b.buffer(buf.keys, 'sk', 'u32', 'read_write');
  const Wt = b.buffer(buf.weights, 'sw', 'vec2<u32>', 'read_write');
  const C = b.buffer(buf.counts, 'sc', 'u32', 'read_write');
  const M = b.buffer(buf.prompt, 'sm', 'u32', 'read');
  const si = b.step();
  return `${b.decls.join('\n')}
${si}
const LW = ${logits.width}u;
const MW = ${Math.ceil(vocab / 32)}u;
const PW = ${PARAM_WORDS}u;
const OW = ${OUT_WORDS}u;
const EMAX = ${DEVICE_MAX_BIAS}u;
${candidatesWgsl({ keys: K, weights: Wt, logits: L }, vocab)}
var<private> pen : bool;
var<private> slot : u32;
var<private> rep : f32;
var<private> pres : f32;
var<private> freq : f32;

// sampler.ts's uniform(seed, counter) · 2^32.
fn hash(seed : u32, counter : u32) -> u32 {
  var z = ((seed ^ 0x9e3779b9u) * 0x85ebca6bu) ^ ((counter + 0x632be5abu) * 0xc2b2ae35u);
  z = (z ^ (z >> 16u)) * 0x21f0aaadu;
  z = (z ^ (z >> 15u)) * 0x735a2d97u;
  return z ^ (z >> 15u);
}

// e^d for d ≤ 0 with the reduction done here (k·ln2 in two parts): GPUs' exp is exp2 of d·log2(e) rounded,
// whose error grows with |d|; below e^-32 a weight is 0 in the sums' fixed point anyway (masked tokens: -inf).
fn expNeg(d : f32) -> f32 {
  if (!(d > -32.0)) { return 0.0; }
  let k = round(d * 1.44269504);
  return ldexp(exp((d - k * 0.693145752) - k * 1.42860677e-6), i32(k));
}

// sampler.ts's applyPenalties on one logit.
fn penalize(x : f32, i : u32) -> f32 {
  var y = x;
  if (pen) {
    let c = ${C}[slot * V + i];
    let seen = ((${M}[slot * MW + (i >> 5u)] >> (i & 31u)) & 1u) != 0u;
    if (rep != 1.0 && (seen || c > 0u)) { y = select(y * rep, y / rep, y > 0.0); }
    if (c > 0u) { y = y - freq * f32(c) - pres; }
  }
  return y;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) li : u32) {
  let s = wid.x;
  if (s >= si[1]) { return; }
  let pb = s * PW;
  if (${P}[pb] == 0u) { return; }
  lid = li;
  base = s * V;
  lbase = s * LW;
  let flags = ${P}[pb + 1u];
  pen = (flags & ${FLAG.penalties}u) != 0u;
  let wantLp = (flags & ${FLAG.logprob}u) != 0u;
  slot = ${P}[pb + 11u];
  rep = bitcast<f32>(${P}[pb + 8u]);
  pres = bitcast<f32>(${P}[pb + 9u]);
  freq = bitcast<f32>(${P}[pb + 10u]);
  let ninf = -3.4e38;
  // Penalties, keys, maxima; then the tokens the logits processors change, again from their logit plus its addition.
  var mY = ninf;
  var mX = ninf;
  for (var i = lid; i < V; i += 256u) {
    let x = ${L}[lbase + i];
    let y = penalize(x, i);
    ${K}[base + i] = gkey(y);
    mY = max(mY, y);
    mX = max(mX, x);
  }
  let nE = ${P}[pb + 13u];
  if (nE > 0u) {
    storageBarrier();
    for (var j = lid; j < nE; j += 256u) {
      let at = (s * EMAX + j) * 2u;
      let id = ${E}[at];
      ${K}[base + id] = gkey(penalize(${L}[lbase + id] + bitcast<f32>(${E}[at + 1u]), id));
    }
    storageBarrier();
    mY = ninf;
    for (var i = lid; i < V; i += 256u) { mY = max(mY, yOf(${K}[base + i])); }
  }
  let top = reduceF(mY, true);
  var tok = 0u;
  if ((flags & ${FLAG.greedy}u) != 0u) {
    tok = argmaxKey().y;
  } else {
    let invT = bitcast<f32>(${P}[pb + 5u]);
    // Weights e^{(y - top)/T} ≤ 1 in fixed point.
    for (var i = lid; i < V; i += 256u) { ${Wt}[base + i] = fixed43(expNeg((yOf(${K}[base + i]) - top) * invT)); }
    // min-p keeps y ≥ top + ln(minP)·T: keys up to that value's.
    var B = vec2<u32>(NONE, NONE);
    if ((flags & ${FLAG.minP}u) != 0u) { B.x = gkey(top + bitcast<f32>(${P}[pb + 4u])); }
    let z = hash(${P}[pb + 6u], ${P}[pb + 7u]);
    storageBarrier();
    let useTopP = (flags & ${FLAG.topP}u) != 0u;
    if ((flags & ${FLAG.indexOrder}u) != 0u) {
      let mass = massOf(B, true);
      tok = pickInOrder(B, false, 0u, true, vec2<u32>(0u, 0u), part64(z, mass), false);
    } else {
      let topK = ${P}[pb + 2u];
      if ((flags & ${FLAG.topK}u) != 0u) { B = selectIn(B, false, vec2<u32>(topK - 1u, 0u), false); }
      // At most SORT_CAP candidates (top-k, or min-p keeping few): sorted in workgroup memory; else radix selects.
      var few = (flags & ${FLAG.topK}u) != 0u && topK <= CAP;
      if (!few && (flags & ${FLAG.minP}u) != 0u) { few = massOf(B, false).x <= CAP; }
      if (few) {
        tok = sortedPick(gather(B), useTopP, ${P}[pb + 3u], z);
      } else {
        if (useTopP) {
          let sum = massOf(B, true);
          B = selectIn(B, true, part64(${P}[pb + 3u], sum), true);
        }
        // A small nucleus (the usual top-p) draws from the sorted few; else one more radix select.
        if (massOf(B, false).x <= CAP) {
          tok = sortedPick(gather(B), false, 0u, z);
        } else {
          let mass = massOf(B, true);
          tok = selectIn(B, true, part64(z, mass), false).y;
        }
      }
    }
  }
  let ob = s * OW;
  if (wantLp) {
    let mx = reduceF(mX, true);
    var e = 0.0;
    for (var i = lid; i < V; i += 256u) { e += exp(${L}[lbase + i] - mx); }
    let ls = log(reduceF(e, false));
    if (lid == 0u) { ${O}[ob + 1u] = bitcast<u32>((${L}[lbase + tok] - mx) - ls); }
    // The top n of the raw row: each thread keeps its best n (key, id) in order (its ids rise, so an equal
    // key stays behind), then n rounds take the best head of all.
    let n = ${P}[pb + 12u];
    var hk : array<u32, ${DEVICE_MAX_LOGPROBS}>;
    var hi : array<u32, ${DEVICE_MAX_LOGPROBS}>;
    var held = 0u;
    if (n > 0u) {
      for (var i = lid; i < V; i += 256u) {
        let g = gkey(${L}[lbase + i]);
        if (held < n || g < hk[held - 1u]) {
          var p = min(held, n - 1u);
          while (p > 0u && hk[p - 1u] > g) { hk[p] = hk[p - 1u]; hi[p] = hi[p - 1u]; p--; }
          hk[p] = g;
          hi[p] = i;
          held = min(held + 1u, n);
        }
      }
    }
    var head = 0u;
    for (var j = 0u; j < n; j++) {
      let best = lexMinOf(select(NONE, hk[min(head, n - 1u)], head < held), select(NONE, hi[min(head, n - 1u)], head < held));
      if (head < held && hi[head] == best.y) { head++; }
      if (lid == 0u) {
        ${O}[ob + 2u + 2u * j] = best.y;
        ${O}[ob + 3u + 2u * j] = bitcast<u32>((${L}[lbase + best.y] - mx) - ls);
      }
    }
  }
  if (lid == 0u) {
    ${O}[ob] = tok;
    if (pen) { ${C}[slot * V + tok] += 1u; }
  }
}`;
}
