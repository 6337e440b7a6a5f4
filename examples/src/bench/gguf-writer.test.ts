import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ggufHeader, llamaCheckpointToGguf, minimalSpmVocab, permuteQK, writeGguf } from './gguf-writer.js';
import { writeRandomLlama } from './random-checkpoint.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-gguf-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Little-endian helpers for spelling the expected bytes by hand. */
const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
const f32 = (v: number) => { const b = Buffer.alloc(4); b.writeFloatLE(v); return b; };
const str = (s: string) => Buffer.concat([u64(Buffer.byteLength(s)), Buffer.from(s)]);

describe('GGUF writer', () => {
  it('writes the header byte for byte as the GGUF v3 spec lays it out', () => {
    const path = join(dir, 'tiny.gguf');
    const size = writeGguf(
      path,
      {
        'general.architecture': { type: 'string', value: 'llama' },
        'llama.block_count': { type: 'uint32', value: 7 },
        'x.eps': { type: 'float32', value: 0.5 },
        'x.flag': { type: 'bool', value: true },
        'x.ids': { type: 'array', itemType: 'int32', values: [1, -2] },
      },
      [
        { name: 'a', shape: [2, 3], data: () => Float32Array.from([1, 2, 3, 4, 5, 6]) },
        { name: 'b', shape: [5], data: () => Float32Array.from([7, 8, 9, 10, 11]) },
      ],
    );
    const expected = Buffer.concat([
      Buffer.from('GGUF'), u32(3), u64(2), u64(5),
      str('general.architecture'), u32(8), str('llama'),
      str('llama.block_count'), u32(4), u32(7),
      str('x.eps'), u32(6), f32(0.5),
      str('x.flag'), u32(7), Buffer.from([1]),
      str('x.ids'), u32(9), u32(5), u64(2), Buffer.from(new Int32Array([1, -2]).buffer),
      // tensor infos: dims innermost first, type F32 (0), offset into the data section
      str('a'), u32(2), u64(3), u64(2), u32(0), u64(0),
      str('b'), u32(1), u64(5), u32(0), u64(32), // 24 bytes of 'a' padded to 32
    ]);
    const file = readFileSync(path);
    const dataStart = Math.ceil(expected.length / 32) * 32;
    expect(file.subarray(0, expected.length).equals(expected)).toBe(true);
    expect(file.subarray(expected.length, dataStart).every((b) => b === 0)).toBe(true);
    expect(Array.from(new Float32Array(file.buffer.slice(file.byteOffset + dataStart, file.byteOffset + dataStart + 24)))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(new Float32Array(file.buffer.slice(file.byteOffset + dataStart + 32, file.byteOffset + dataStart + 52)))).toEqual([7, 8, 9, 10, 11]);
    expect(size).toBe(dataStart + 64);
    expect(file.length).toBe(size);
    expect(ggufHeader({}, []).header.length).toBe(32); // 24 bytes of counts, padded
  });

  it("permutes q/k rows like convert_hf_to_gguf.py's permute (reshape(h, 2, hd/2, cols).swapaxes(1, 2))", () => {
    // 2 heads of head_dim 4, 1 column: rows [h0: a0 a1 b0 b1 | h1: c0 c1 d0 d1] → [a0 b0 a1 b1 | c0 d0 c1 d1]
    const w = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Array.from(permuteQK(w, 8, 1, 2))).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    const w2 = Float32Array.from({ length: 8 * 3 }, (_, i) => i);
    const p = permuteQK(w2, 8, 3, 2);
    expect(Array.from(p.subarray(3, 6))).toEqual([6, 7, 8]); // row 1 ← row 2 (head 0, second half, j = 0)
  });

  it('reads back with node-llama-cpp: metadata, tensor names, shapes and offsets', async () => {
    const ckpt = join(dir, 'ckpt');
    writeRandomLlama(ckpt, { name: 'tiny', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 96, vocab: 300 });
    const path = join(dir, 'tiny-llama.gguf');
    llamaCheckpointToGguf(ckpt, path);
    const { readGgufFileInfo } = await import('node-llama-cpp');
    const info = await readGgufFileInfo(path, { logWarnings: false });
    expect(info.version).toBe(3);
    const md = info.metadata as unknown as { general: { architecture: string }; llama: Record<string, unknown>; tokenizer: { ggml: { model: string; tokens: string[] } } };
    expect(md.general.architecture).toBe('llama');
    expect(md.llama.block_count).toBe(2);
    expect(md.llama.embedding_length).toBe(64);
    expect(md.llama.feed_forward_length).toBe(96);
    expect((md.llama.attention as Record<string, unknown>).head_count_kv).toBe(2);
    expect((md.llama.rope as Record<string, unknown>).dimension_count).toBe(16);
    expect(md.tokenizer.ggml.model).toBe('llama');
    expect(md.tokenizer.ggml.tokens.length).toBe(300);
    const infos = info.tensorInfo!;
    expect(infos.length).toBe(1 + 2 * 9 + 2);
    const q = infos.find((t) => t.name === 'blk.1.attn_k.weight')!;
    expect(q.dimensions.map(Number)).toEqual([64, 32]);
    expect(q.ggmlType).toBe(0);
    for (const t of infos) expect(Number(t.offset) % 32).toBe(0);
    expect(infos.map((t) => t.name)).toContain('output.weight');
  });

  it('builds a vocabulary llama.cpp accepts', () => {
    const v = minimalSpmVocab(300);
    expect(v.tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(v.tokens[3 + 10]).toBe('<0x0A>');
    expect(v.tokens[259]).toBe('\u2581');
    expect(new Set(v.tokens).size).toBe(300);
    expect(() => minimalSpmVocab(100)).toThrow(/at least 260/);
  });
});
