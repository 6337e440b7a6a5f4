/**
 * Paged attention in plain JS (`PagedAttentionArgs` in plan-ops.ts says what
 * it computes): the path without the addon and the reference for
 * native/plan-ops.c `attention` + native/dense.c `attend`. The checks are the
 * native ones, with the same messages.
 */
import { ATTN_SEQ_FIELDS, type PagedAttentionArgs } from './plan-types.js';

const fr = Math.fround;

/** The sequence of each row, after checking that sequences tile the rows and that every block they touch is in the pool. */
function rowSequences(p: PagedAttentionArgs): Int32Array {
  const { seqs, tables, rows: T, blockSize: bs, slidingWindow: window, numBlocks } = p;
  if (seqs.length % ATTN_SEQ_FIELDS !== 0) throw new RangeError(`attention: seqs holds ${seqs.length} integers, not a multiple of ${ATTN_SEQ_FIELDS}`);
  const rowSeq = new Int32Array(T);
  let next = 0;
  for (let si = 0; si < seqs.length / ATTN_SEQ_FIELDS; si++) {
    const [id, start, L, ctx, toff] = seqs.subarray(si * ATTN_SEQ_FIELDS, (si + 1) * ATTN_SEQ_FIELDS) as unknown as [number, number, number, number, number];
    if (start !== next || L < 0 || ctx < 0 || start + L > T) throw new RangeError(`attention: sequence ${id}: rows ${start}..${start + L} do not continue the step's rows at ${next} (of ${T})`);
    next = start + L;
    const end = ctx + L;
    const need = Math.ceil(end / bs);
    const first = window > 0 ? Math.max(0, ctx - window + 1) : 0;
    if (toff < 0 || toff + need > tables.length) throw new RangeError(`attention: sequence ${id}: ${end} tokens need ${need} blocks of ${bs}, its block table is shorter`);
    for (let b = Math.floor(first / bs); b < need; b++) {
      const blk = tables[toff + b]!;
      if (blk < 0 || blk >= numBlocks) throw new RangeError(`attention: sequence ${id}: block ${b} is ${blk}, outside the pool of ${numBlocks} blocks`);
    }
    rowSeq.fill(si, start, start + L);
  }
  if (next !== T) throw new RangeError(`attention: the sequences cover ${next} rows, the step has ${T}`);
  return rowSeq;
}

export function pagedAttentionPortable(p: PagedAttentionArgs): void {
  const { q, k, v, out, kCache, vCache, seqs, tables, rows: T, numHeads: H, numKvHeads: Hk, headDim: D, vHeadDim: Dv, blockSize: bs } = p;
  if (H % Hk !== 0 || (v === null) !== (vCache === null) || (!v && Dv > D)) throw new RangeError('attention: bad dims (heads, head sizes) or v/vCache given without the other');
  if (kCache.length !== p.numBlocks * Hk * bs * D || (vCache && vCache.length !== p.numBlocks * Hk * bs * Dv)) throw new RangeError('attention: the caches do not hold numBlocks × Hk × blockSize × D');
  const rowSeq = rowSequences(p);
  const G = H / Hk;
  const slotOf = (si: number, pos: number, g: number): number => {
    const blk = tables[seqs[si * ATTN_SEQ_FIELDS + 4]! + Math.floor(pos / bs)]!;
    return (blk * Hk + g) * bs + (pos % bs);
  };
  const posOf = (t: number): number => {
    const s = rowSeq[t]! * ATTN_SEQ_FIELDS;
    return seqs[s + 3]! + t - seqs[s + 1]!;
  };
  for (let t = 0; t < T; t++)
    for (let g = 0; g < Hk; g++) {
      const slot = slotOf(rowSeq[t]!, posOf(t), g);
      const ko = k.offset + t * k.stride + g * D;
      kCache.set(k.data.subarray(ko, ko + D), slot * D);
      if (v && vCache) {
        const vo = v.offset + t * v.stride + g * Dv;
        vCache.set(v.data.subarray(vo, vo + Dv), slot * Dv);
      }
    }
  const acc = new Float64Array(Dv);
  for (let t = 0; t < T; t++) {
    const pos = posOf(t);
    const first = p.slidingWindow > 0 ? Math.max(0, pos - p.slidingWindow + 1) : 0;
    const n = pos - first + 1;
    const probs = new Float64Array(n);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / G);
      const qo = q.offset + t * q.stride + h * D;
      let mx = -Infinity;
      for (let j = 0; j < n; j++) {
        const ko = slotOf(rowSeq[t]!, first + j, g) * D;
        let s = 0;
        for (let d = 0; d < D; d++) s += q.data[qo + d]! * kCache[ko + d]!;
        let sc = fr(fr(s) * p.scale);
        if (p.softCap > 0) sc = fr(fr(Math.tanh(fr(sc / p.softCap))) * p.softCap);
        probs[j] = sc;
        mx = Math.max(mx, sc);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += probs[j] = fr(Math.exp(fr(probs[j]! - mx)));
      acc.fill(0);
      for (let j = 0; j < n; j++) {
        const slot = slotOf(rowSeq[t]!, first + j, g);
        const [src, o] = vCache ? [vCache, slot * Dv] : [kCache, slot * D];
        const pj = probs[j]! / sum;
        for (let d = 0; d < Dv; d++) acc[d] = acc[d]! + pj * src[o + d]!;
      }
      out.data.set(acc, out.offset + t * out.stride + h * Dv);
    }
  }
}
