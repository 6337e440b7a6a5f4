/**
 * The device sampler's candidate machinery (WGSL, spliced into wgsl-sampling.ts's kernel): one workgroup
 * of 256 threads per row over the row's order-preserving keys (smaller = more likely; ties by lower id)
 * and fixed-point weights. Every candidate set is a lexicographic prefix (key, id) ≤ B. Counts and masses
 * are exact u64 sums; a radix select (8 passes of 16-bin histograms, then the ties in id order) finds the
 * first token whose running count or mass crosses a goal; at most SORT_CAP candidates sort in workgroup
 * memory instead (bitonic), the top-p cut and the draw read from their running masses.
 */

/** Candidates up to which top-k / top-p sort in workgroup memory instead of radix-selecting over the vocabulary. */
export const SORT_CAP = 512;
/** Workgroup memory the candidate machinery declares (bytes). */
export const CANDIDATES_SHARED_BYTES = 4 * (256 + 512 + 32 + 32 + 512 + 16 + 4 * SORT_CAP + 8);

/** Binding names of the row's keys (u32), weights (vec2<u32>: u64 units of 2^-43), both `[rows, vocab]`, and raw logits (f32, rows of `logitsWidth`). */
export interface CandidateNames {
  keys: string;
  weights: string;
  logits: string;
}

/** Declarations and functions; the kernel sets the privates `lid`, `base` (row · vocab) and `lbase` (row · logitsWidth). */
export function candidatesWgsl(n: CandidateNames, vocab: number): string {
  const K = n.keys;
  const Wt = n.weights;
  const L = n.logits;
  return `const V = ${vocab}u;
const CH = ${Math.ceil(vocab / 256)}u;
const NONE = 0xffffffffu;
const CAP = ${SORT_CAP}u;
var<workgroup> shf : array<f32, 256>;
var<workgroup> sh : array<vec2<u32>, 256>;
var<workgroup> sb : array<vec2<u32>, 16>;
var<workgroup> hist : array<atomic<u32>, 32>;
var<workgroup> rk : array<u32, 256>;
var<workgroup> ri : array<u32, 256>;
var<workgroup> wsel : u32;
var<workgroup> wf : vec2<u32>;
var<workgroup> wpick : vec2<u32>;
var<workgroup> wbt : vec2<u32>;
var<workgroup> wred : f32;
var<workgroup> wsum : vec2<u32>;
var<workgroup> wlex : vec2<u32>;
var<workgroup> ck : array<u32, CAP>;
var<workgroup> ci : array<u32, CAP>;
var<workgroup> pre : array<vec2<u32>, CAP>;
var<workgroup> ccount : atomic<u32>;
var<workgroup> cmin : atomic<u32>;
var<workgroup> wcount : u32;
var<workgroup> wcut : u32;
var<workgroup> wtok : u32;
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

// Counts and masses are exact u64 sums (lo, hi) (weights in units of 2^-43): associative,
// so every order of summing agrees, and a draw resolves to 2^-32 of the mass as the host's double one does.
fn add64(a : vec2<u32>, b : vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}
fn gt64(a : vec2<u32>, b : vec2<u32>) -> bool { return a.y > b.y || (a.y == b.y && a.x > b.x); }
fn crosses(v : vec2<u32>, goal : vec2<u32>, ge : bool) -> bool { return gt64(v, goal) || (ge && all(v == goal)); }
fn nonzero(v : vec2<u32>) -> bool { return (v.x | v.y) != 0u; }
fn mul32(a : u32, b : u32) -> vec2<u32> {
  let p00 = (a & 0xffffu) * (b & 0xffffu);
  let p01 = (a & 0xffffu) * (b >> 16u);
  let p10 = (a >> 16u) * (b & 0xffffu);
  let mid = p01 + p10;
  let lo = p00 + (mid << 16u);
  return vec2<u32>(lo, (a >> 16u) * (b >> 16u) + (mid >> 16u) + select(0u, 0x10000u, mid < p01) + select(0u, 1u, lo < p00));
}
// floor(f · m / 2^32): a fraction f / 2^32 of m.
fn part64(f : u32, m : vec2<u32>) -> vec2<u32> { return add64(mul32(f, m.y), vec2<u32>(mul32(f, m.x).y, 0u)); }
fn qty(i : u32, useMass : bool) -> vec2<u32> { return select(vec2<u32>(1u, 0u), ${Wt}[base + i], useMass); }
// A weight in [0, 1] as u64 units of 2^-43: every f32 weight from 2^-19 up exactly, smaller ones to 1e-13.
fn fixed43(w : f32) -> vec2<u32> {
  let b = bitcast<u32>(w);
  let e = i32((b >> 23u) & 0xffu);
  let m = (b & 0x7fffffu) | 0x800000u;
  let s = e - 107;
  if (e == 0 || s <= -32) { return vec2<u32>(0u, 0u); }
  if (s < 0) { return vec2<u32>(m >> u32(-s), 0u); }
  let su = u32(s);
  return vec2<u32>(m << su, select(m >> (32u - su), 0u, su == 0u));
}

// Reductions hand their result through a variable of their own: Mesa's GL compiler was seen reading the
// scratch array's first entry after the next writes to it.
fn reduceF(v : f32, isMax : bool) -> f32 {
  shf[lid] = v;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) { shf[lid] = select(shf[lid] + shf[lid + st], max(shf[lid], shf[lid + st]), isMax); }
    workgroupBarrier();
  }
  if (lid == 0u) { wred = shf[0]; }
  workgroupBarrier();
  return wred;
}

// Every thread's v into sh[lid]; sb[g] = the sum of threads 16g .. 16g + 15.
fn sums16(v : vec2<u32>) {
  sh[lid] = v;
  workgroupBarrier();
  if (lid < 16u) {
    var t = vec2<u32>(0u, 0u);
    for (var j = 0u; j < 16u; j++) { t = add64(t, sh[lid * 16u + j]); }
    sb[lid] = t;
  }
  workgroupBarrier();
}

// The count or mass of the tokens within B (uniform: it may steer the kernel).
fn massOf(B : vec2<u32>, useMass : bool) -> vec2<u32> {
  var m = vec2<u32>(0u, 0u);
  for (var i = lid; i < V; i += 256u) { if (within(${K}[base + i], i, B)) { m = add64(m, qty(i, useMass)); } }
  sums16(m);
  if (lid == 0u) {
    var t = vec2<u32>(0u, 0u);
    for (var j = 0u; j < 16u; j++) { t = add64(t, sb[j]); }
    wsum = t;
  }
  return workgroupUniformLoad(&wsum);
}

// The tokens within B (at most CAP) into ck / ci; their number.
fn gather(B : vec2<u32>) -> u32 {
  if (lid == 0u) { atomicStore(&ccount, 0u); }
  workgroupBarrier();
  for (var i = lid; i < V; i += 256u) {
    let g = ${K}[base + i];
    if (within(g, i, B)) {
      let j = atomicAdd(&ccount, 1u);
      if (j < CAP) { ck[j] = g; ci[j] = i; }
    }
  }
  workgroupBarrier();
  if (lid == 0u) { wcount = min(atomicLoad(&ccount), CAP); }
  return workgroupUniformLoad(&wcount);
}

// Few candidates (gathered): sorted by (key, id) in workgroup memory (bitonic), their running masses in that
// order, the top-p cut (when asked) and the draw, as sampler.ts walks its best-first candidates.
fn sortedPick(n : u32, useTopP : bool, pfix : u32, z : u32) -> u32 {
  for (var j = n + lid; j < CAP; j += 256u) { ck[j] = NONE; ci[j] = NONE; }
  workgroupBarrier();
  for (var k = 2u; k <= CAP; k <<= 1u) {
    for (var j = k >> 1u; j > 0u; j >>= 1u) {
      let i = (lid / j) * 2u * j + (lid % j);
      let l = i + j;
      let a = vec2<u32>(ck[i], ci[i]);
      let b = vec2<u32>(ck[l], ci[l]);
      let aAfter = a.x > b.x || (a.x == b.x && a.y > b.y);
      if (aAfter == ((i & k) == 0u)) { ck[i] = b.x; ci[i] = b.y; ck[l] = a.x; ci[l] = a.y; }
      workgroupBarrier();
    }
  }
  let j0 = 2u * lid;
  let j1 = j0 + 1u;
  let w0 = select(vec2<u32>(0u, 0u), ${Wt}[base + min(ci[j0], V - 1u)], j0 < n);
  let w1 = select(vec2<u32>(0u, 0u), ${Wt}[base + min(ci[j1], V - 1u)], j1 < n);
  sh[lid] = add64(w0, w1);
  workgroupBarrier();
  for (var off = 1u; off < 256u; off <<= 1u) {
    var x = sh[lid];
    if (lid >= off) { x = add64(x, sh[lid - off]); }
    workgroupBarrier();
    sh[lid] = x;
    workgroupBarrier();
  }
  let excl = select(vec2<u32>(0u, 0u), sh[max(lid, 1u) - 1u], lid > 0u);
  pre[j0] = add64(excl, w0);
  pre[j1] = add64(pre[j0], w1);
  let total = sh[255];
  if (lid == 0u) { atomicStore(&cmin, NONE); }
  workgroupBarrier();
  var cut = n - 1u;
  if (useTopP) {
    let goal = part64(pfix, total);
    if (j0 < n && crosses(pre[j0], goal, true)) { atomicMin(&cmin, j0); } else if (j1 < n && crosses(pre[j1], goal, true)) { atomicMin(&cmin, j1); }
    workgroupBarrier();
    if (lid == 0u) { wcut = min(atomicLoad(&cmin), n - 1u); atomicStore(&cmin, NONE); }
    workgroupBarrier();
    cut = wcut;
  }
  let goal = part64(z, pre[cut]);
  if (j0 <= cut && gt64(pre[j0], goal)) { atomicMin(&cmin, j0); } else if (j1 <= cut && gt64(pre[j1], goal)) { atomicMin(&cmin, j1); }
  workgroupBarrier();
  if (lid == 0u) { wtok = ci[min(atomicLoad(&cmin), cut)]; }
  workgroupBarrier();
  return wtok;
}

// The row's first (key, id): the argmax of its processed logits, ties lower id.
fn argmaxKey() -> vec2<u32> {
  var bk = NONE;
  var bi = NONE;
  for (var i = lid; i < V; i += 256u) {
    let g = ${K}[base + i];
    if (g < bk || (g == bk && i < bi)) { bk = g; bi = i; }
  }
  return lexMinOf(bk, bi);
}

// The smallest (key, id) any thread holds.
fn lexMinOf(bk : u32, bi : u32) -> vec2<u32> {
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
fn pickInOrder(B : vec2<u32>, eqOnly : bool, gs : u32, useMass : bool, before : vec2<u32>, goal : vec2<u32>, ge : bool) -> u32 {
  let lo = min(V, lid * CH);
  let hi = min(V, lo + CH);
  var tq = vec2<u32>(0u, 0u);
  for (var i = lo; i < hi; i++) {
    let g = ${K}[base + i];
    if (within(g, i, B) && (!eqOnly || g == gs)) { tq = add64(tq, qty(i, useMass)); }
  }
  sums16(tq);
  if (lid == 0u) {
    var cum = before;
    var pickT = NONE;
    var at = before;
    var lastT = NONE;
    var atLast = before;
    for (var gi = 0u; gi < 16u; gi++) {
      let gv = sb[gi];
      if (nonzero(gv)) {
        var c2 = cum;
        for (var j = 0u; j < 16u; j++) {
          let v = sh[gi * 16u + j];
          if (nonzero(v)) {
            if (pickT == NONE && crosses(add64(c2, v), goal, ge)) { pickT = gi * 16u + j; at = c2; }
            lastT = gi * 16u + j;
            atLast = c2;
          }
          c2 = add64(c2, v);
        }
      }
      cum = add64(cum, gv);
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
      if (nonzero(v)) {
        lastI = i;
        if (crosses(add64(acc, v), goal, ge)) { found = i; break; }
      }
      acc = add64(acc, v);
    }
    wpick.y = select(found, lastI, found == NONE);
  }
  workgroupBarrier();
  let r = wpick.y;
  workgroupBarrier();
  return r;
}

// Radix select in (key, id) order over the tokens within B: the first whose running count or mass crosses goal.
fn selectIn(B : vec2<u32>, useMass : bool, goal : vec2<u32>, ge : bool) -> vec2<u32> {
  if (lid == 0u) { wsel = 0u; wf = vec2<u32>(0u, 0u); }
  for (var p = 0u; p < 8u; p++) {
    if (lid < 32u) { atomicStore(&hist[lid], 0u); }
    workgroupBarrier();
    let shift = 28u - 4u * p;
    let hmask = select(0xffffffffu << (32u - 4u * p), 0u, p == 0u);
    let pre = wsel;
    var h : array<vec2<u32>, 16>;
    for (var i = lid; i < V; i += 256u) {
      let g = ${K}[base + i];
      if ((g & hmask) == pre && within(g, i, B)) {
        let d = (g >> shift) & 15u;
        h[d] = add64(h[d], qty(i, useMass));
      }
    }
    // Exact u64 adds into the bins: a carry out of a low word goes to its high word.
    for (var d = 0u; d < 16u; d++) {
      let v = h[d];
      if (!nonzero(v)) { continue; }
      let old = atomicAdd(&hist[2u * d], v.x);
      let carry = select(0u, 1u, old + v.x < old);
      if (v.y + carry != 0u) { atomicAdd(&hist[2u * d + 1u], v.y + carry); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var cum = wf;
      var pick = 16u;
      var at = wf;
      var lastD = 16u;
      var atLast = wf;
      for (var d = 0u; d < 16u; d++) {
        let v = vec2<u32>(atomicLoad(&hist[2u * d]), atomicLoad(&hist[2u * d + 1u]));
        if (nonzero(v)) {
          if (pick == 16u && crosses(add64(cum, v), goal, ge)) { pick = d; at = cum; }
          lastD = d;
          atLast = cum;
        }
        cum = add64(cum, v);
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
`;
}
