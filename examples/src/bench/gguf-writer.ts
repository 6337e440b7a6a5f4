/**
 * A small GGUF (v3) writer, enough to hand weft's Hugging Face Llama
 * checkpoints to llama.cpp (node-llama-cpp) for side-by-side benchmarks, as f32, BF16, or with the
 * decoder's linear weights in exactly the Q8_0 / Q4_0 blocks weft makes at load (@weft/cpu-kernels'
 * quantizers, llama.cpp's reference rounding), so both engines run identical numbers.
 *
 * File layout (ggml/docs/gguf.md), all little-endian:
 *   magic "GGUF", version u32 = 3, tensor_count u64, kv_count u64,
 *   kv_count × (key: string, type: u32, value),
 *   tensor_count × (name: string, n_dims: u32, ne: u64 × n_dims (innermost first), ggml_type: u32, offset: u64),
 *   zero padding to `general.alignment` (32), then each tensor's data at its offset
 *   (offsets relative to the start of the data section, each a multiple of the alignment).
 * A string is a u64 byte length and UTF-8 bytes, no terminator.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '@weft/core';
import { quantizeQ4_0, quantizeQ8_0, toBf16 } from '@weft/cpu-kernels';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** gguf_type: the metadata value types. */
export const GGUF_TYPE = {
  uint8: 0, int8: 1, uint16: 2, int16: 3, uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9, uint64: 10, int64: 11, float64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_TYPE, 'array'>;

/** ggml_type of the tensors this writer emits. */
export const GGML_TYPE_F32 = 0;
export const GGML_TYPE_Q4_0 = 2;
export const GGML_TYPE_Q8_0 = 8;
export const GGML_TYPE_BF16 = 30;

/** Bytes of one ggml block and the elements it holds, per type (ggml.c type_traits). */
const GGML_BLOCK: Record<number, { bytes: number; elements: number }> = {
  [GGML_TYPE_F32]: { bytes: 4, elements: 1 },
  [GGML_TYPE_BF16]: { bytes: 2, elements: 1 },
  [GGML_TYPE_Q8_0]: { bytes: 34, elements: 32 }, // block_q8_0: ggml_half d; int8_t qs[32]
  [GGML_TYPE_Q4_0]: { bytes: 18, elements: 32 }, // block_q4_0: ggml_half d; uint8_t qs[16]
};

/** Bytes of a tensor of `numel` elements stored as `type`. */
export function ggmlBytes(type: number, numel: number): number {
  const b = GGML_BLOCK[type];
  if (!b) throw new Error(`ggml type ${type} is not one this writer emits`);
  if (numel % b.elements) throw new Error(`${numel} elements is not a whole number of ${b.elements}-element blocks (ggml type ${type})`);
  return (numel / b.elements) * b.bytes;
}

export type GgufValue =
  | { type: Exclude<GgufScalarType, 'string' | 'bool' | 'uint64' | 'int64'>; value: number }
  | { type: 'uint64' | 'int64'; value: bigint | number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GgufScalarType; values: readonly (number | bigint | boolean | string)[] };

export interface GgufTensor {
  name: string;
  /** Row-major shape as numpy/safetensors write it (outermost first); GGUF stores it reversed. */
  shape: number[];
  /** ggml_type (default F32). */
  type?: number;
  /** The data, produced when the writer reaches it (one tensor in memory at a time): f32 values for F32,
   * the encoded bytes (ggmlBytes long) for the other types. */
  data: () => Float32Array | Uint8Array;
}

/** Little-endian byte builder for the header. */
class Bytes {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer) {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number) { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.push(b); }
  i32(v: number) { const b = Buffer.alloc(4); b.writeInt32LE(v); this.push(b); }
  u64(v: number | bigint) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  i64(v: number | bigint) { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v)); this.push(b); }
  f32(v: number) { const b = Buffer.alloc(4); b.writeFloatLE(v); this.push(b); }
  f64(v: number) { const b = Buffer.alloc(8); b.writeDoubleLE(v); this.push(b); }
  u16(v: number) { const b = Buffer.alloc(2); b.writeUInt16LE(v); this.push(b); }
  i16(v: number) { const b = Buffer.alloc(2); b.writeInt16LE(v); this.push(b); }
  u8(v: number) { this.push(Buffer.from([v & 0xff])); }
  i8(v: number) { const b = Buffer.alloc(1); b.writeInt8(v); this.push(b); }
  str(s: string) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  zeros(n: number) { if (n > 0) this.push(Buffer.alloc(n)); }
  scalar(type: GgufScalarType, v: number | bigint | boolean | string) {
    switch (type) {
      case 'uint8': return this.u8(Number(v));
      case 'int8': return this.i8(Number(v));
      case 'uint16': return this.u16(Number(v));
      case 'int16': return this.i16(Number(v));
      case 'uint32': return this.u32(Number(v));
      case 'int32': return this.i32(Number(v));
      case 'float32': return this.f32(Number(v));
      case 'float64': return this.f64(Number(v));
      case 'uint64': return this.u64(v as number | bigint);
      case 'int64': return this.i64(v as number | bigint);
      case 'bool': return this.u8(v ? 1 : 0);
      case 'string': return this.str(String(v));
    }
  }
  done(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** The header (everything before the tensor data, padding included) and each tensor's data offset. */
export function ggufHeader(metadata: Record<string, GgufValue>, tensors: Pick<GgufTensor, 'name' | 'shape' | 'type'>[], alignment = GGUF_ALIGNMENT): { header: Buffer; offsets: number[]; dataBytes: number } {
  const h = new Bytes();
  h.u32(GGUF_MAGIC);
  h.u32(GGUF_VERSION);
  h.u64(tensors.length);
  h.u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    h.str(key);
    h.u32(GGUF_TYPE[v.type]);
    if (v.type === 'array') {
      h.u32(GGUF_TYPE[v.itemType]);
      h.u64(v.values.length);
      for (const x of v.values) h.scalar(v.itemType, x);
    } else {
      h.scalar(v.type, v.value);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    h.str(t.name);
    h.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) h.u64(d);
    h.u32(t.type ?? GGML_TYPE_F32);
    h.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + ggmlBytes(t.type ?? GGML_TYPE_F32, t.shape.reduce((a, b) => a * b, 1)), alignment);
  }
  h.zeros(alignUp(h.length, alignment) - h.length);
  return { header: h.done(), offsets, dataBytes: offset };
}

/** Write a GGUF file. Returns its size in bytes. */
export function writeGguf(path: string, metadata: Record<string, GgufValue>, tensors: GgufTensor[]): number {
  const alignment = metadata['general.alignment']?.type === 'uint32' ? (metadata['general.alignment'].value as number) : GGUF_ALIGNMENT;
  const { header, offsets, dataBytes } = ggufHeader(metadata, tensors, alignment);
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, header, 0);
    tensors.forEach((t, i) => {
      const data = t.data();
      const type = t.type ?? GGML_TYPE_F32;
      const bytes = ggmlBytes(type, t.shape.reduce((a, b) => a * b, 1));
      if ((type === GGML_TYPE_F32) !== data instanceof Float32Array || data.byteLength !== bytes)
        throw new Error(`${t.name}: ${data.byteLength} bytes (${data.constructor.name}) for shape [${t.shape.join(', ')}] as ggml type ${type} (${bytes} bytes)`);
      writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.length + offsets[i]!);
    });
    // Pad the last tensor to the alignment, as gguf.py does.
    const end = header.length + dataBytes;
    const lastT = tensors[tensors.length - 1];
    const last = lastT ? header.length + offsets[tensors.length - 1]! + ggmlBytes(lastT.type ?? GGML_TYPE_F32, lastT.shape.reduce((a, b) => a * b, 1)) : end;
    if (end > last) writeAll(fd, new Uint8Array(end - last), last);
    return end;
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(bytes.length - done, 1 << 30);
    done += writeSync(fd, bytes, done, n, position + done);
  }
}

/** Q8_0 blocks as GGUF stores them: per block the fp16 scale, then the 32 int8 values. */
export function encodeQ8_0(w: Float32Array): Uint8Array {
  const { qs, d } = quantizeQ8_0(w);
  const out = new Uint8Array(d.length * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < d.length; b++) {
    dv.setUint16(b * 34, d[b]!, true);
    out.set(new Uint8Array(qs.buffer, qs.byteOffset + b * 32, 32), b * 34 + 2);
  }
  return out;
}

/** Q4_0 blocks as GGUF stores them: per block the fp16 scale, then 16 bytes of nibbles (the layout weft's Q4_0 has). */
export function encodeQ4_0(w: Float32Array): Uint8Array {
  const { qs, d } = quantizeQ4_0(w);
  const out = new Uint8Array(d.length * 18);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < d.length; b++) {
    dv.setUint16(b * 18, d[b]!, true);
    out.set(qs.subarray(b * 16, b * 16 + 16), b * 18 + 2);
  }
  return out;
}

export function encodeBf16(w: Float32Array): Uint8Array {
  const b = toBf16(w);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * convert_hf_to_gguf.py's `LlamaModel.permute`: Hugging Face stores each head's
 * q/k rows as [first halves | second halves] (rotate_half RoPE); llama.cpp's
 * llama arch rotates adjacent pairs, so rows go (head, 2, hd/2) → (head, hd/2, 2).
 */
export function permuteQK(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const src = (h * hd + s * half + j) * cols;
        const dst = (h * hd + j * 2 + s) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/**
 * A SentencePiece-style vocabulary llama.cpp accepts: <unk>, <s>, </s>, the 256 byte tokens, "▁" (so that
 * text with spaces round-trips and node-llama-cpp's load check stays quiet), then fillers. Token ids are fed directly.
 */
export function minimalSpmVocab(size: number): { tokens: string[]; scores: number[]; types: number[] } {
  if (size < 260) throw new Error(`a llama (SPM) vocabulary needs at least 260 entries (3 specials, 256 bytes, "▁"), got ${size}`);
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3]; // UNKNOWN, CONTROL, CONTROL
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6); // BYTE
  }
  tokens.push('\u2581');
  types.push(1);
  while (tokens.length < size) {
    tokens.push(`\u2581t${tokens.length}`);
    types.push(1); // NORMAL
  }
  return { tokens, scores: tokens.map((_, i) => (i < 260 ? 0 : -i)), types };
}

interface HfLlamaConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  vocab_size: number;
  max_position_embeddings?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  tie_word_embeddings?: boolean;
  bos_token_id?: number;
  eos_token_id?: number | number[];
}

/**
 * The formats of llamaCheckpointToGguf, each the GGUF twin of a weft load option:
 *   f32  — every tensor F32 (weft's default dtype float32);
 *   bf16 — every matrix BF16, norms F32 (weft dtype 'bfloat16');
 *   q8_0 / q4_0 — the decoder layers' linear weights as Q8_0 / Q4_0 blocks (input dimension a multiple of 32),
 *          the embedding and LM head BF16, norms F32 (weft dtype 'bfloat16' with quantization 'int8' / 'int4':
 *          weft leaves embeddings and the LM head unquantized, as llama.cpp's files here do too).
 */
export type GgufFormat = 'f32' | 'bf16' | 'q8_0' | 'q4_0';
export const GGUF_FILE_TYPE: Record<GgufFormat, number> = { f32: 0, bf16: 32, q8_0: 7, q4_0: 2 }; // llama_ftype

/**
 * Convert a Hugging Face Llama checkpoint directory (config.json + safetensors, any float dtype)
 * into one GGUF file with llama.cpp's `llama` arch names, the same function as the original.
 */
export function llamaCheckpointToGguf(dir: string, outPath: string, log: (m: string) => void = () => {}, format: GgufFormat = 'f32'): number {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as HfLlamaConfig;
  const heads = cfg.num_attention_heads;
  const kvHeads = cfg.num_key_value_heads ?? heads;
  const hd = cfg.hidden_size / heads;
  const vocab = minimalSpmVocab(cfg.vocab_size);
  const eos = Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id[0] : cfg.eos_token_id;
  const metadata: Record<string, GgufValue> = {
    'general.architecture': { type: 'string', value: 'llama' },
    'general.name': { type: 'string', value: 'weft random llama' },
    'general.alignment': { type: 'uint32', value: GGUF_ALIGNMENT },
    'general.file_type': { type: 'uint32', value: GGUF_FILE_TYPE[format] },
    'llama.vocab_size': { type: 'uint32', value: cfg.vocab_size },
    'llama.context_length': { type: 'uint32', value: cfg.max_position_embeddings ?? 2048 },
    'llama.embedding_length': { type: 'uint32', value: cfg.hidden_size },
    'llama.block_count': { type: 'uint32', value: cfg.num_hidden_layers },
    'llama.feed_forward_length': { type: 'uint32', value: cfg.intermediate_size },
    'llama.attention.head_count': { type: 'uint32', value: heads },
    'llama.attention.head_count_kv': { type: 'uint32', value: kvHeads },
    'llama.rope.dimension_count': { type: 'uint32', value: hd },
    'llama.attention.layer_norm_rms_epsilon': { type: 'float32', value: cfg.rms_norm_eps ?? 1e-6 },
    'llama.rope.freq_base': { type: 'float32', value: cfg.rope_theta ?? 10000 },
    'tokenizer.ggml.model': { type: 'string', value: 'llama' },
    'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', values: vocab.tokens },
    'tokenizer.ggml.scores': { type: 'array', itemType: 'float32', values: vocab.scores },
    'tokenizer.ggml.token_type': { type: 'array', itemType: 'int32', values: vocab.types },
    'tokenizer.ggml.bos_token_id': { type: 'uint32', value: cfg.bos_token_id ?? 1 },
    'tokenizer.ggml.eos_token_id': { type: 'uint32', value: eos ?? 2 },
    'tokenizer.ggml.unknown_token_id': { type: 'uint32', value: 0 },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
  };
  const ckpt = Checkpoint.open(dir);
  try {
    const f32 = (name: string) => ckpt.read(name).data as Float32Array;
    const t = (name: string, hf: string, transform?: (w: Float32Array, shape: number[]) => Float32Array): GgufTensor => {
      const shape = ckpt.info(hf).shape;
      const values = () => (transform ? transform(f32(hf), shape) : f32(hf));
      // norms (1-D) stay F32 in every format; the layers' linears take the block format; the rest BF16 unless f32
      const linear = /^blk\.\d+\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(name) && shape.length === 2 && shape[1]! % 32 === 0;
      if (format === 'f32' || shape.length === 1) return { name, shape, data: values };
      if (linear && format === 'q8_0') return { name, shape, type: GGML_TYPE_Q8_0, data: () => encodeQ8_0(values()) };
      if (linear && format === 'q4_0') return { name, shape, type: GGML_TYPE_Q4_0, data: () => encodeQ4_0(values()) };
      return { name, shape, type: GGML_TYPE_BF16, data: () => encodeBf16(values()) };
    };
    const tensors: GgufTensor[] = [t('token_embd.weight', 'model.embed_tokens.weight')];
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const p = `model.layers.${i}`;
      tensors.push(
        t(`blk.${i}.attn_norm.weight`, `${p}.input_layernorm.weight`),
        t(`blk.${i}.attn_q.weight`, `${p}.self_attn.q_proj.weight`, (w, s) => permuteQK(w, s[0]!, s[1]!, heads)),
        t(`blk.${i}.attn_k.weight`, `${p}.self_attn.k_proj.weight`, (w, s) => permuteQK(w, s[0]!, s[1]!, kvHeads)),
        t(`blk.${i}.attn_v.weight`, `${p}.self_attn.v_proj.weight`),
        t(`blk.${i}.attn_output.weight`, `${p}.self_attn.o_proj.weight`),
        t(`blk.${i}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`),
        t(`blk.${i}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`),
        t(`blk.${i}.ffn_up.weight`, `${p}.mlp.up_proj.weight`),
        t(`blk.${i}.ffn_down.weight`, `${p}.mlp.down_proj.weight`),
      );
    }
    tensors.push(t('output_norm.weight', 'model.norm.weight'));
    const tied = cfg.tie_word_embeddings === true || !ckpt.has('lm_head.weight');
    tensors.push(t('output.weight', tied ? 'model.embed_tokens.weight' : 'lm_head.weight'));
    log(`writing ${outPath} (${tensors.length} tensors, ${format})`);
    return writeGguf(outPath, metadata, tensors);
  } finally {
    ckpt.close();
  }
}
