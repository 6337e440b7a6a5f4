/**
 * A packed linear weight loaded from its checkpoint chunk by chunk (row-chunks.ts) holds the same blocks as one
 * packed from the whole fp32 slice, for every loader shape (whole tensor, a row slice, a fused shard, a column
 * slice), and never asks the checkpoint for more than a chunk of rows at once.
 */
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { LinearWeight } from '../linear/linear-weight.js';
import { hostWeight, type HostTensor, type WeightHandle, type WeightLoader } from '../parameter.js';
import { GgmlLinearMethod, UnquantizedLinearMethod } from './linear-method.js';
import { createPackedWeight, type PackedFormat } from './packed-weight.js';
import { chunkRows, ROW_CHUNK_FLOATS } from './row-chunks.js';

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2);
}

/** A checkpoint tensor [n, k] as a handle that records the most fp32 values any read returned. */
function recorded(n: number, k: number, seed: number) {
  const host: HostTensor = { shape: [n, k], dtype: 'float32', data: random(n * k, seed) };
  const inner = hostWeight('w', host);
  const seen = { largest: 0 };
  const note = (t: HostTensor) => ((seen.largest = Math.max(seen.largest, t.data.length)), t);
  const handle: WeightHandle = { name: 'w', shape: host.shape, read: () => note(inner.read()), narrow: (d, s, l) => note(inner.narrow(d, s, l)) };
  return { host, handle, seen };
}

const METHODS = { q8_0: new GgmlLinearMethod('q8_0'), q4_0: new GgmlLinearMethod('q4_0'), bf16: new UnquantizedLinearMethod('bfloat16') };

function bytesOf(w: LinearWeight): number[] {
  const p = w.packed!;
  return p.format === 'bf16' ? Array.from(p.data) : [...Array.from(p.qs), ...Array.from(p.d)];
}

/** The same weight packed from the whole fp32 slice in one call. */
function packedWhole(format: PackedFormat, rows: Float32Array, n: number, k: number): number[] {
  const p = createPackedWeight(format, n, k);
  p.storeRows(rows, 0, n);
  return p.format === 'bf16' ? Array.from(p.data) : [...Array.from(p.qs), ...Array.from(p.d)];
}

// k large enough that a chunk is a few rows: the loads below take several chunks and a short last one.
const K = 1 << 16;
const N = 11;

describe('packed weights load a chunk of rows at a time', () => {
  it('a chunk is about ROW_CHUNK_FLOATS values, at least one row', () => {
    expect(chunkRows(K)).toBe(4);
    expect(chunkRows(2048) * 2048).toBe(ROW_CHUNK_FLOATS);
    expect(chunkRows(1 << 20)).toBe(1);
  });

  it.each(['q8_0', 'q4_0', 'bf16'] as const)('%s: the whole tensor (read)', (format) => {
    const { host, handle, seen } = recorded(N, K, 1);
    const w = new LinearWeight('w', N, K, (p, h) => p.set(h.read(), h.name));
    w.useMethod(METHODS[format]);
    w.load(handle);
    expect(w.loaded).toBe(true);
    expect(bytesOf(w)).toEqual(packedWhole(format, host.data as Float32Array, N, K));
    expect(seen.largest).toBe(chunkRows(K) * K);
  });

  it.each(['q8_0', 'q4_0'] as const)('%s: a row slice (column-parallel) and fused shards', (format) => {
    const { host, handle, seen } = recorded(N, K, 2);
    // rows 3..9 of the tensor as this rank's weight
    const slice = new LinearWeight('w', 7, K, (p, h) => p.set(h.narrow(0, 3, 7), h.name));
    slice.useMethod(METHODS[format]);
    slice.load(handle);
    expect(bytesOf(slice)).toEqual(packedWhole(format, (host.data as Float32Array).subarray(3 * K, 10 * K), 7, K));
    // two shards of one tensor into a fused weight, the second first
    const fusedLoader: WeightLoader = (p, h, id) => p.setSlice(h.narrow(0, id === 'b' ? 5 : 0, id === 'b' ? 6 : 5), 0, id === 'b' ? 5 : 0, h.name, id);
    const fused = new LinearWeight('w', N, K, fusedLoader, ['a', 'b']);
    fused.useMethod(METHODS[format]);
    fused.load(handle, 'b');
    expect(fused.loaded).toBe(false);
    fused.load(handle, 'a');
    expect(fused.loaded).toBe(true);
    expect(bytesOf(fused)).toEqual(packedWhole(format, host.data as Float32Array, N, K));
    expect(seen.largest).toBe(chunkRows(K) * K);
  });

  it('q4_0: a column slice (row-parallel)', () => {
    const { host, handle, seen } = recorded(N, K, 3);
    const half = K / 2;
    const w = new LinearWeight('w', N, half, (p, h) => p.set(h.narrow(1, half, half), h.name));
    w.useMethod(METHODS.q4_0);
    w.load(handle);
    const cols = new Float32Array(N * half);
    for (let r = 0; r < N; r++) cols.set((host.data as Float32Array).subarray(r * K + half, (r + 1) * K), r * half);
    expect(bytesOf(w)).toEqual(packedWhole('q4_0', cols, N, half));
    expect(seen.largest).toBe(chunkRows(K) * K);
  });

  it('an fp32 weight still reads its slice whole', () => {
    const { handle, seen } = recorded(4, 64, 4);
    const w = new LinearWeight('w', 4, 64, (p, h) => p.set(h.read(), h.name));
    w.load(handle);
    expect(w.loaded).toBe(true);
    expect(seen.largest).toBe(4 * 64);
    w.dispose();
  });
});
