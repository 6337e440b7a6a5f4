/**
 * vLLM's `QuantizationConfig`: chosen at load from the user's `dtype` /
 * `quantization`, it picks the linear method of every linear weight. Quantized
 * (Q8_0 / Q4_0): decoder-layer linear weights whose input dim on this rank is
 * a multiple of 32 (a row-parallel shard cuts the input dim: its slice must
 * hold whole blocks); routers, embeddings, LM head and norms never. Every other
 * linear weight is unquantized in `dtype`.
 *
 * Models do not thread the config through their constructors (vLLM passes
 * `quant_config` to each layer): weights are allocated at load, so the loader
 * asks the config once per LinearWeight before reading any tensor.
 */
import { isQuantizableName, QUANT_BLOCK, type WeightFormat } from '@weft/core';
import type { LinearWeight } from '../linear/linear-weight.js';
import { GgmlLinearMethod, UnquantizedLinearMethod, type LinearMethodBase } from './linear-method.js';

export class QuantizationConfig {
  private readonly unquantized: LinearMethodBase;
  private readonly quantized: LinearMethodBase | null;

  constructor(readonly format: WeightFormat) {
    this.unquantized = new UnquantizedLinearMethod(format.dtype);
    this.quantized = format.quantization ? new GgmlLinearMethod(format.quantization) : null;
  }

  /** vLLM's `get_quant_method(layer, prefix)`, for one linear (or expert) weight. */
  getQuantMethod(weight: LinearWeight): LinearMethodBase {
    if (this.quantized && isQuantizableName(weight.name) && weight.inFeatures % QUANT_BLOCK === 0) return this.quantized;
    return this.unquantized;
  }

  /** Why a weight the format would quantize stays unquantized on this rank; null when it is quantized or never would be. */
  skipReason(weight: LinearWeight): string | null {
    if (!this.quantized || !isQuantizableName(weight.name) || weight.inFeatures % QUANT_BLOCK === 0) return null;
    return `input dim ${weight.inFeatures} on this rank is not a multiple of ${QUANT_BLOCK}`;
  }
}
