/** The RoPE variants weft implements, named as Hugging Face's `rope_type`. */
export type RopeType = 'default' | 'linear' | 'llama3' | 'yarn' | 'dynamic';

/**
 * A model's `rope_parameters` (HF 5) / `rope_scaling` (HF 4), camel-cased.
 * This is also the `rope` object the config parser produces, so it can be
 * passed straight through; `theta` stands in for `base` when that is absent.
 */
export interface RopeScaling {
  type: RopeType;
  theta?: number;
  factor?: number;
  /** llama3 */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  /** llama3 and yarn: the pre-extension context length (HF defaults it to `max_position_embeddings`). */
  originalMaxPositionEmbeddings?: number;
  /** yarn */
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  mscaleAllDim?: number;
  /** yarn: an explicit cos/sin multiplier; overrides the one derived from mscale. */
  attentionFactor?: number;
  /** yarn: floor/ceil the correction range (HF default true; gpt-oss sets false). */
  truncate?: boolean;
}

export interface RopeOptions {
  /** Last dimension of q/k given to `forward`; dims past `rotaryDim` pass through. */
  headSize: number;
  /** How many leading dims are rotated (even). */
  rotaryDim: number;
  /**
   * The cos/sin cache covers positions `[0, maxPosition)`. Use the config's
   * `max_position_embeddings`: HF also uses it as the default
   * `original_max_position_embeddings` and as dynamic NTK's reference length.
   */
  maxPosition: number;
  /** `rope_theta`; falls back to `scaling.theta`. */
  base?: number;
  /**
   * Round inv_freq to the checkpoint dtype, as transformers does when a model
   * is cast with `.to(torch.bfloat16)` (the buffer is cast too). Default float32.
   */
  invFreqDtype?: string;
  /** true: rotate halves (Llama, `rotate_half`); false: rotate even/odd pairs (GPT-J, DeepSeek). */
  isNeoxStyle: boolean;
  scaling?: RopeScaling | null;
}
