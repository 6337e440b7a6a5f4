import type { RopeConfig, RopeType } from '@weft/core';

export type { RopeType };

/**
 * A model's rope settings as @weft/core's config parser produces them
 * (`rope_parameters` / `rope_scaling`, camel-cased), so they pass straight
 * through; `theta` stands in for `base` when that is absent.
 */
export type RopeScaling = Omit<RopeConfig, 'theta'> & { theta?: number };

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
