/**
 * The device sampler's kernel: one workgroup per sampled row, the engine's
 * sampler.ts in WGSL. Penalties from the row's history slot (prompt bitmask,
 * output counts), then vLLM v1's order: temperature → min-p → top-k → top-p
 * (over what min-p and top-k kept) → one draw from `uniform(seed, counter)`
 * (the same u32 hash: WGSL's wrapping multiply is Math.imul). No sort: each
 * token gets an order-preserving key (smaller = more likely; ties by lower
 * id), every candidate set is a lexicographic prefix (key, id) ≤ bound, and
 * top-k, top-p and the draw are one radix select each (8 passes of 16-bin
 * count or mass histograms, then the ties in id order). Without top-k and
 * top-p the draw walks the kept tokens in id order, as sampler.ts does.
 * Logprobs are of the raw row, the top ones found by repeated argmax.
 */
import type { PlanAct } from '../ops.js';
import { DEVICE_MAX_LOGPROBS } from '../row-sampling.js';
import type { Binder } from './wgsl-common.js';

/** u32 words of one row's parameters; flag bits of word 1. */
export const PARAM_WORDS = 16;
export const FLAG = { greedy: 1, indexOrder: 2, logprob: 4, penalties: 8, minP: 16, topP: 32, topK: 64 } as const;
/** u32 words of one row's result: token, its logprob, then (id, logprob) × DEVICE_MAX_LOGPROBS. */
export const OUT_WORDS = 2 + 2 * DEVICE_MAX_LOGPROBS;
/** Workgroup memory the kernel declares (bytes). */
export const SAMPLING_SHARED_BYTES = 4 * (4096 + 512 + 16 + 8);

export interface SamplingBuffers {
  params: GPUBuffer;
  out: GPUBuffer;
  /** Per row scratch: keys (u32) and weights (f32), `[maxSeqs, vocab]` each. */
  keys: GPUBuffer;
  weights: GPUBuffer;
  /** Per slot: output counts `[slots, vocab]` u32, prompt bitmask `[slots, ceil(vocab / 32)]`. */
  counts: GPUBuffer;
  prompt: GPUBuffer;
}

export function samplingWgsl(b: Binder, logits: PlanAct, vocab: number, buf: SamplingBuffers): string {
  const L = b.act(logits);
  const P = b.buffer(buf.params, 'sp', 'u32', 'read');
  const O = b.buffer(buf.out, 'so', 'u32', 'read_write');
  const K = b.buffer(buf.keys, 'sk', 'u32', 'read_write');
  const Wt = b.buffer(buf.weights, 'sw', 'f32', 'read_write');
  const C = b.buffer(buf.counts, 'sc', 'u32', 'read_write');
  const M = b.buffer(buf.prompt, 'sm', 'u32', 'read');
  const si = b.step();
  return `${b.decls.join('\n')}
${si}
const V = ${vocab}u;
const LW = ${logits.width}u;
const MW = ${Math.ceil(vocab / 32)}u;
const CH = ${Math.ceil(vocab / 256)}u;
const PW = ${PARAM_WORDS}u;
const OW = ${OUT_WORDS}u;
const NONE = 0xffffffffu;
var<workgroup> sh : array<f32, 4096>;
var<workgroup> rk : array<u32, 256>;
var<workgroup> ri : array<u32, 256>;
var<workgroup> sb : array<f32, 16>;
var<workgroup> wsel : u32;
var<workgroup> wf : f32;
var<workgroup> wpick : vec2<u32>;
var<workgroup> wbt : f32;
var<workgroup> wred : f32;
var<workgroup> wlex : vec2<u32>;
var<private> lid : u32;
var<private> base : u32;
var<private> lbase : u32;

// Order-preserving key, smaller = larger value (-0 and +0 one key).
fn gkey(y : f32) -> u32 {
  var b = bitcast<u32>(y);
  if ((b & 0x7fffffffu) == 0u) { b = 0u; }
  return ~select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn yOf(g : u32) -> f32 {
  let asc = ~g;
  return bitcast<f32>(select(~asc, asc & 0x7fffffffu, (asc & 0x80000000u) != 0u));
}
fn within(g : u32, i : u32, B : vec2<u32>) -> bool { return g < B.x || (g == B.x && i <= B.y); }
fn crosses(v : f32, goal : f32, ge : bool) -> bool { return select(v > goal, v >= goal, ge); }
fn qty(i : u32, useMass : bool) -> f32 { return select(1.0, ${Wt}[base + i], useMass); }

// sampler.ts's uniform(seed, counter), 24 bits of it.
fn uniform01(seed : u32, counter : u32) -> f32 {
  var z = ((seed ^ 0x9e3779b9u) * 0x85ebca6bu) ^ ((counter + 0x632be5abu) * 0xc2b2ae35u);
  z = (z ^ (z >> 16u)) * 0x21f0aaadu;
  z = (z ^ (z >> 15u)) * 0x735a2d97u;
  z = z ^ (z >> 15u);
  return f32(z >> 8u) * (1.0 / 16777216.0);
}

fn reduceAll(v : f32, isMax : bool) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) { sh[lid] = select(sh[lid] + sh[lid + st], max(sh[lid], sh[lid + st]), isMax); }
    workgroupBarrier();
  }
  // Through a variable of its own: Mesa's GL compiler was seen reading sh[0] after the next writes to sh.
  if (lid == 0u) { wred = sh[0]; }
  workgroupBarrier();
  return wred;
}

// Every thread's v into sh[lid]; sb[g] = the sum of threads 16g .. 16g + 15.
fn sums16(v : f32) {
  sh[lid] = v;
  workgroupBarrier();
  if (lid < 16u) {
    var t = 0.0;
    for (var j = 0u; j < 16u; j++) { t += sh[lid * 16u + j]; }
    sb[lid] = t;
  }
  workgroupBarrier();
}

fn massOf(B : vec2<u32>) -> f32 {
  var m = 0.0;
  for (var i = lid; i < V; i += 256u) { if (within(${K}[base + i], i, B)) { m += ${Wt}[base + i]; } }
  return reduceAll(m, false);
}

// The first (key, id) after E (or the first of all) on the row's keys or its raw logits: argmax, ties lower id.
fn lexMinAfter(E : vec2<u32>, hasE : bool, raw : bool) -> vec2<u32> {
  var bk = NONE;
  var bi = NONE;
  for (var i = lid; i < V; i += 256u) {
    let g = select(${K}[base + i], gkey(${L}[lbase + i]), raw);
    let after = !hasE || g > E.x || (g == E.x && i > E.y);
    if (after && (g < bk || (g == bk && i < bi))) { bk = g; bi = i; }
  }
  rk[lid] = bk;
  ri[lid] = bi;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) {
      let ok = rk[lid + st];
      let oi = ri[lid + st];
      if (ok < rk[lid] || (ok == rk[lid] && oi < ri[lid])) { rk[lid] = ok; ri[lid] = oi; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { wlex = vec2<u32>(rk[0], ri[0]); }
  workgroupBarrier();
  return wlex;
}

// In id order over the tokens within B (only those keyed gs when eqOnly): the first whose running count or
// mass, from before, crosses goal; else the last one that has any.
fn pickInOrder(B : vec2<u32>, eqOnly : bool, gs : u32, useMass : bool, before : f32, goal : f32, ge : bool) -> u32 {
  let lo = min(V, lid * CH);
  let hi = min(V, lo + CH);
  var tq = 0.0;
  for (var i = lo; i < hi; i++) {
    let g = ${K}[base + i];
    if (within(g, i, B) && (!eqOnly || g == gs)) { tq += qty(i, useMass); }
  }
  sums16(tq);
  if (lid == 0u) {
    var cum = before;
    var pickT = NONE;
    var at = 0.0;
    var lastT = NONE;
    var atLast = 0.0;
    for (var gi = 0u; gi < 16u; gi++) {
      let gv = sb[gi];
      if (gv > 0.0) {
        var c2 = cum;
        for (var j = 0u; j < 16u; j++) {
          let v = sh[gi * 16u + j];
          if (v > 0.0) {
            if (pickT == NONE && crosses(c2 + v, goal, ge)) { pickT = gi * 16u + j; at = c2; }
            lastT = gi * 16u + j;
            atLast = c2;
          }
          c2 += v;
        }
      }
      cum += gv;
    }
    if (pickT == NONE) { pickT = lastT; at = atLast; }
    wpick = vec2<u32>(pickT, NONE);
    wbt = at;
  }
  workgroupBarrier();
  if (lid == wpick.x) {
    var acc = wbt;
    var found = NONE;
    var lastI = NONE;
    for (var i = lo; i < hi; i++) {
      let g = ${K}[base + i];
      if (!(within(g, i, B) && (!eqOnly || g == gs))) { continue; }
      let v = qty(i, useMass);
      if (v > 0.0) {
        lastI = i;
        if (crosses(acc + v, goal, ge)) { found = i; break; }
      }
      acc += v;
    }
    wpick.y = select(found, lastI, found == NONE);
  }
  workgroupBarrier();
  let r = wpick.y;
  workgroupBarrier();
  return r;
}

// Radix select in (key, id) order over the tokens within B: the first whose running count or mass crosses goal.
fn selectIn(B : vec2<u32>, useMass : bool, goal : f32, ge : bool) -> vec2<u32> {
  if (lid == 0u) { wsel = 0u; wf = 0.0; }
  workgroupBarrier();
  for (var p = 0u; p < 8u; p++) {
    let shift = 28u - 4u * p;
    let hmask = select(0xffffffffu << (32u - 4u * p), 0u, p == 0u);
    let pre = wsel;
    var h : array<f32, 16>;
    for (var i = lid; i < V; i += 256u) {
      let g = ${K}[base + i];
      if ((g & hmask) == pre && within(g, i, B)) { h[(g >> shift) & 15u] += qty(i, useMass); }
    }
    for (var d = 0u; d < 16u; d++) { sh[d * 256u + lid] = h[d]; }
    workgroupBarrier();
    var part = 0.0;
    let pb = (lid >> 4u) * 256u + (lid & 15u) * 16u;
    for (var j = 0u; j < 16u; j++) { part += sh[pb + j]; }
    workgroupBarrier();
    sums16(part);
    if (lid == 0u) {
      var cum = wf;
      var pick = 16u;
      var at = 0.0;
      var lastD = 16u;
      var atLast = wf;
      for (var d = 0u; d < 16u; d++) {
        let v = sb[d];
        if (v > 0.0) {
          if (pick == 16u && crosses(cum + v, goal, ge)) { pick = d; at = cum; }
          lastD = d;
          atLast = cum;
        }
        cum += v;
      }
      if (pick == 16u) { pick = select(lastD, 0u, lastD == 16u); at = atLast; }
      wsel = pre | (pick << shift);
      wf = at;
    }
    workgroupBarrier();
  }
  let gs = wsel;
  let before = wf;
  workgroupBarrier();
  return vec2<u32>(gs, pickInOrder(B, true, gs, useMass, before, goal, ge));
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
  let pen = (flags & ${FLAG.penalties}u) != 0u;
  let wantLp = (flags & ${FLAG.logprob}u) != 0u;
  let slot = ${P}[pb + 11u];
  let rep = bitcast<f32>(${P}[pb + 8u]);
  let pres = bitcast<f32>(${P}[pb + 9u]);
  let freq = bitcast<f32>(${P}[pb + 10u]);
  let ninf = -3.4e38;
  // Penalties (sampler.ts's applyPenalties), keys, maxima.
  var mY = ninf;
  var mX = ninf;
  for (var i = lid; i < V; i += 256u) {
    let x = ${L}[lbase + i];
    var y = x;
    if (pen) {
      let c = ${C}[slot * V + i];
      let seen = ((${M}[slot * MW + (i >> 5u)] >> (i & 31u)) & 1u) != 0u;
      if (rep != 1.0 && (seen || c > 0u)) { y = select(y * rep, y / rep, y > 0.0); }
      if (c > 0u) { y = y - freq * f32(c) - pres; }
    }
    ${K}[base + i] = gkey(y);
    mY = max(mY, y);
    mX = max(mX, x);
  }
  let top = reduceAll(mY, true);
  var tok = 0u;
  if ((flags & ${FLAG.greedy}u) != 0u) {
    tok = lexMinAfter(vec2<u32>(0u, 0u), false, false).y;
  } else {
    let invT = bitcast<f32>(${P}[pb + 5u]);
    for (var i = lid; i < V; i += 256u) { ${Wt}[base + i] = exp((yOf(${K}[base + i]) - top) * invT); }
    // min-p keeps y ≥ top + ln(minP)·T: keys up to that value's.
    var B = vec2<u32>(NONE, NONE);
    if ((flags & ${FLAG.minP}u) != 0u) { B.x = gkey(top + bitcast<f32>(${P}[pb + 4u])); }
    let u = uniform01(${P}[pb + 6u], ${P}[pb + 7u]);
    storageBarrier();
    if ((flags & ${FLAG.indexOrder}u) != 0u) {
      let mass = massOf(B);
      tok = pickInOrder(B, false, 0u, true, 0.0, u * mass, false);
    } else {
      if ((flags & ${FLAG.topK}u) != 0u) { B = selectIn(B, false, f32(${P}[pb + 2u] - 1u), false); }
      if ((flags & ${FLAG.topP}u) != 0u) {
        let sum = massOf(B);
        B = selectIn(B, true, bitcast<f32>(${P}[pb + 3u]) * sum, true);
      }
      let mass = massOf(B);
      tok = selectIn(B, true, u * mass, false).y;
    }
  }
  let ob = s * OW;
  if (wantLp) {
    let mx = reduceAll(mX, true);
    var e = 0.0;
    for (var i = lid; i < V; i += 256u) { e += exp(${L}[lbase + i] - mx); }
    let ls = log(reduceAll(e, false));
    if (lid == 0u) { ${O}[ob + 1u] = bitcast<u32>((${L}[lbase + tok] - mx) - ls); }
    var E = vec2<u32>(0u, 0u);
    let n = ${P}[pb + 12u];
    for (var j = 0u; j < n; j++) {
      E = lexMinAfter(E, j > 0u, true);
      if (lid == 0u) {
        ${O}[ob + 2u + 2u * j] = E.y;
        ${O}[ob + 3u + 2u * j] = bitcast<u32>((${L}[lbase + E.y] - mx) - ls);
      }
    }
  }
  if (lid == 0u) {
    ${O}[ob] = tok;
    if (pen) { ${C}[slot * V + tok] += 1u; }
  }
}`;
}
