/**
 * A one-node ONNX model, `com.microsoft::MatMulNBits` (onnxruntime's block-quantized matmul), written with a
 * minimal protobuf encoder so bench:kernels can time onnxruntime-node as a kernel library on exactly our
 * Q8_0 / Q4_0 blocks: B [N, K/32, blob] unsigned (Q8_0: q + 128, zero point 128; Q4_0: q as stored, zero
 * point 8 — both onnxruntime's defaults when zero_points is absent), scales fp32 [N, K/32] (the fp16 d widened).
 * onnx.proto field numbers: ModelProto ir_version 1, graph 7, opset_import 8; GraphProto node 1, name 2,
 * initializer 5, input 11, output 12; NodeProto input 1, output 2, op_type 4, attribute 5, domain 7;
 * AttributeProto name 1, i 3, type 20; TensorProto dims 1, data_type 2, name 8, raw_data 9;
 * ValueInfoProto name 1, type 2; TypeProto tensor_type 1; Tensor elem_type 1, shape 2; shape dim 1; dim_value 1.
 */
import { fp16ToFp32, type Q4_0Weight, type Q8_0Weight } from '@weft/cpu-kernels';

class Pb {
  parts: Buffer[] = [];
  private varint(v: number | bigint) {
    let x = BigInt(v);
    const out: number[] = [];
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x) b |= 0x80;
      out.push(b);
    } while (x);
    this.parts.push(Buffer.from(out));
  }
  int(field: number, v: number | bigint) {
    this.varint((field << 3) | 0);
    this.varint(v);
    return this;
  }
  bytes(field: number, b: Uint8Array | string) {
    const buf = typeof b === 'string' ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.varint((field << 3) | 2);
    this.varint(buf.length);
    this.parts.push(buf);
    return this;
  }
  msg(field: number, m: Pb) {
    return this.bytes(field, m.done());
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const FLOAT = 1, UINT8 = 2;

function tensor(name: string, dims: number[], type: number, data: Uint8Array): Pb {
  const t = new Pb();
  for (const d of dims) t.int(1, d);
  return t.int(2, type).bytes(8, name).bytes(9, data);
}

function valueInfo(name: string, dims: (number | string)[]): Pb {
  const shape = new Pb();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Pb().int(1, d) : new Pb().bytes(2, d));
  return new Pb().bytes(1, name).msg(2, new Pb().msg(1, new Pb().int(1, FLOAT).msg(2, shape)));
}

const attr = (name: string, v: number) => new Pb().bytes(1, name).int(3, v).int(20, 2);

/** The ONNX model bytes computing Y[M, N] = A[M, K] · dequant(B)ᵀ for one Q8_0 or Q4_0 weight. */
export function matMulNBitsModel(w: Q8_0Weight | Q4_0Weight, n: number, k: number, bits: 8 | 4, accuracyLevel: number): Buffer {
  const nb = k / 32, blob = bits === 8 ? 32 : 16;
  const b = new Uint8Array(n * nb * blob);
  if (bits === 8) {
    const qs = (w as Q8_0Weight).qs;
    for (let i = 0; i < qs.length; i++) b[i] = (qs[i]! + 128) & 0xff;
  } else {
    // GGUF: byte j holds elements j (low) and j+16 (high); onnxruntime: byte j holds 2j (low) and 2j+1 (high).
    const qs = (w as Q4_0Weight).qs;
    for (let blk = 0; blk < n * nb; blk++) {
      const q = new Uint8Array(32);
      for (let j = 0; j < 16; j++) {
        q[j] = qs[blk * 16 + j]! & 15;
        q[j + 16] = qs[blk * 16 + j]! >> 4;
      }
      for (let j = 0; j < 16; j++) b[blk * 16 + j] = q[2 * j]! | (q[2 * j + 1]! << 4);
    }
  }
  const scales = new Float32Array(n * nb);
  for (let i = 0; i < scales.length; i++) scales[i] = fp16ToFp32(w.d[i]!);
  const node = new Pb().bytes(1, 'A').bytes(1, 'B').bytes(1, 'scales').bytes(2, 'Y').bytes(4, 'MatMulNBits').bytes(7, 'com.microsoft');
  for (const [name, v] of [['K', k], ['N', n], ['bits', bits], ['block_size', 32], ['accuracy_level', accuracyLevel]] as const) node.msg(5, attr(name, v));
  const graph = new Pb()
    .msg(1, node)
    .bytes(2, 'matmul_nbits')
    .msg(5, tensor('B', [n, nb, blob], UINT8, b))
    .msg(5, tensor('scales', [n, nb], FLOAT, new Uint8Array(scales.buffer)))
    .msg(11, valueInfo('A', ['M', k]))
    .msg(12, valueInfo('Y', ['M', n]));
  return new Pb()
    .int(1, 8)
    .msg(7, graph)
    .msg(8, new Pb().bytes(1, '').int(2, 17))
    .msg(8, new Pb().bytes(1, 'com.microsoft').int(2, 1))
    .done();
}
