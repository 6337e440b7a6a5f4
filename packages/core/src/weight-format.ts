/**
 * How a model's weights are held in memory, in vLLM's option names:
 * `dtype` ('float32' | 'bfloat16') for the weights kept unquantized and
 * `quantization` ('int8' → GGUF Q8_0 blocks, 'int4' → GGUF Q4_0 blocks) for
 * the decoder-layer linear weights. Checked here, on the driver, before any
 * rank starts; the same rules size the memory check.
 */
import { Checkpoint } from './checkpoint.js';
import { ConfigError } from './errors.js';

export type WeightDtype = 'float32' | 'bfloat16';
export type QuantizationOption = 'int8' | 'int4';
/** The block formats behind the options (llama.cpp's names). */
export type QuantFormat = 'q8_0' | 'q4_0';

export const WEIGHT_DTYPES: readonly WeightDtype[] = ['float32', 'bfloat16'];
export const QUANTIZATIONS: readonly QuantizationOption[] = ['int8', 'int4'];
export const QUANT_FORMAT_OF: Record<QuantizationOption, QuantFormat> = { int8: 'q8_0', int4: 'q4_0' };

/** Elements per block along the input dimension, each block with one fp16 scale (GGUF QK8_0 = QK4_0 = 32). */
export const QUANT_BLOCK = 32;
/** Bytes of one block: 32 int8 + fp16 scale; 16 bytes of nibbles + fp16 scale. */
export const QUANT_BLOCK_BYTES: Record<QuantFormat, number> = { q8_0: 34, q4_0: 18 };

/** The weight options of a load, validated. */
export interface WeightFormat {
  dtype: WeightDtype;
  quantization: QuantFormat | null;
}

/** Validate `dtype` / `quantization` as given by a user (option or CLI flag), naming the bad one. */
export function resolveWeightFormat(opts: { dtype?: unknown; quantization?: unknown }): WeightFormat {
  const dtype = opts.dtype ?? 'float32';
  if (!WEIGHT_DTYPES.includes(dtype as WeightDtype)) {
    throw new ConfigError(`dtype '${String(dtype)}' is not supported (use ${WEIGHT_DTYPES.map((d) => `'${d}'`).join(' or ')})`);
  }
  const q = opts.quantization ?? null;
  if (q !== null && !QUANTIZATIONS.includes(q as QuantizationOption)) {
    throw new ConfigError(
      `quantization '${String(q)}' is not supported (use ${QUANTIZATIONS.map((x) => `'${x}' (${QUANT_FORMAT_OF[x]})`).join(' or ')}, or leave it out)`,
    );
  }
  return { dtype: dtype as WeightDtype, quantization: q === null ? null : QUANT_FORMAT_OF[q as QuantizationOption] };
}

/** Checkpoint tensors that are never quantized whatever their shape (make_quant_expected.py's SKIP). */
const NEVER_QUANTIZED = ['embed', 'lm_head', 'norm', 'mlp.gate.weight', 'block_sparse_moe.gate.weight', 'router'];

/**
 * A decoder-layer linear weight that may be quantized, by name: embeddings, LM head, norms and MoE routers
 * stay as they are. The input dimension must also be a multiple of QUANT_BLOCK (on the rank: see the layers).
 */
export function isQuantizableName(name: string): boolean {
  return name.endsWith('.weight') && !NEVER_QUANTIZED.some((s) => name.includes(s));
}

/** A checkpoint tensor that will be quantized if the rank's shard allows it: 2-D, input dim a multiple of 32. */
export function isQuantizableTensor(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && shape[1]! % QUANT_BLOCK === 0 && isQuantizableName(name);
}

/** Bytes a rank holds for a tensor of `elements` values in `format`. */
export function quantizedBytes(format: QuantFormat, elements: number): number {
  return (elements / QUANT_BLOCK) * QUANT_BLOCK_BYTES[format];
}

/**
 * Bytes a checkpoint tensor takes in memory under `fmt`: quantizable tensors as blocks; other linear-like
 * 2-D tensors (embeddings and an untied LM head too) as 2 bytes with dtype bfloat16; everything else fp32.
 */
export function heldTensorBytes(name: string, shape: readonly number[], fmt: WeightFormat): number {
  const elements = shape.reduce((a, b) => a * b, 1);
  if (fmt.quantization && isQuantizableTensor(name, shape)) return quantizedBytes(fmt.quantization, elements);
  if (fmt.dtype === 'bfloat16' && shape.length === 2) return elements * 2;
  return elements * 4;
}

/**
 * `resolveWeightFormat`, then: a quantization must find something to quantize in this checkpoint
 * (checked on the driver, from the headers, before any rank starts).
 */
export function resolveModelWeightFormat(modelDir: string, opts: { dtype?: unknown; quantization?: unknown }): WeightFormat {
  const fmt = resolveWeightFormat(opts);
  if (!fmt.quantization) return fmt;
  const ckpt = Checkpoint.open(modelDir);
  try {
    if (!ckpt.names().some((n) => isQuantizableTensor(n, ckpt.info(n).shape))) {
      throw new ConfigError(
        `${modelDir}: quantization '${String(opts.quantization)}' (${fmt.quantization}) has nothing to quantize: no decoder linear weight has an input dim that is a multiple of ${QUANT_BLOCK}`,
      );
    }
  } finally {
    ckpt.close();
  }
  return fmt;
}
