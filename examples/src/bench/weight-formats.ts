/** The benches' weight formats: weft's load options for each (the GGUF twin is written by llamaCheckpointToGguf with the same name). */
import type { GgufFormat } from './gguf-writer.js';

export function weftFormatOptions(format: GgufFormat): { dtype?: 'bfloat16'; quantization?: 'int8' | 'int4' } {
  return format === 'f32' ? {} : format === 'bf16' ? { dtype: 'bfloat16' } : { dtype: 'bfloat16', quantization: format === 'q8_0' ? 'int8' : 'int4' };
}
