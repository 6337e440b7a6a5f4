/** Random weights for the addon benches (speed does not depend on the values): xorshift bytes, fp16 scales, bf16 values. */
let s = 0x9e3779b9;
/** Start the sequence again (two copies of a model get the same values). */
export const seedBench = () => void (s = 0x9e3779b9);
export function fillRandom(u8) {
  const u32 = new Uint32Array(u8.buffer, u8.byteOffset, u8.byteLength >> 2);
  for (let i = 0; i < u32.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    u32[i] = s >>> 0;
  }
}
/** Where the benches' weights live: '4k' an ordinary ArrayBuffer, 'huge' the addon's hostBuffer (2 MiB pages advised). */
export const PAGES = ['4k', 'huge'];
export function allocator(pages, mod) {
  if (!PAGES.includes(pages)) throw new Error(`--pages: '${pages}' is not one of ${PAGES.join(', ')}`);
  if (pages === 'huge' && !mod.hostBuffer) throw new Error('--pages huge: this addon build has no hostBuffer');
  return pages === 'huge' ? (bytes) => mod.hostBuffer(bytes, true) : (bytes) => new ArrayBuffer(bytes);
}
const plain = (bytes) => new ArrayBuffer(bytes);
/** Random fp16 values of moderate size (no NaN, no inf), as block scales. */
export const fp16Scales = (len, alloc = plain) => { const d = new Uint16Array(alloc(len * 2)); for (let i = 0; i < len; i++) d[i] = 0x1c00 + ((i * 2654435761) >>> 22); return d; };
export const bf16Values = (len, alloc = plain) => { const w = new Uint16Array(alloc(len * 2)); fillRandom(new Uint8Array(w.buffer)); for (let i = 0; i < len; i++) w[i] = (w[i] & 0x807f) | 0x3c00; return w; };
/** Bytes a weight takes per element in each format. */
export const BYTES = { q8_0: 34 / 32, q4_0: 18 / 32, bf16: 2 };
