/** What `LLM.load` takes: the layout, backend, weight format, device plan, scheduler and KV sizing of a model's ranks. */
import { BACKEND_NAMES, ConfigError, type BackendName, type QuantizationOption, type WeightDtype } from '@weft/core';
import type { RankPoolLike, SpawnOptions } from '@weft/comm';
import type { CpuKernelsOptions } from '@weft/layers';
import type { KVSizingOptions } from './kv-sizing.js';
import type { DevicePlanOption } from './rank-runner.js';

export interface LLMOptions extends KVSizingOptions {
  tp?: number;
  pp?: number;
  dp?: number;
  enableExpertParallel?: boolean;
  /**
   * The ranks' tfjs backend (default: the first that loads, tensorflow > wasm > cpu). Tensorflow with packed weights (dtype bfloat16, quantization) on worker-thread ranks
   * whose step is the host plan loads libtensorflow only when a tfjs step needs it (LLM.logits' full forward, a
   * fallback): 0.35 GB less resident memory a process until then (rank-backend.ts).
   */
  backend?: BackendName;
  /** Unquantized weights: fp32 (default) or bf16 kept as 16-bit in memory (vLLM's --dtype). */
  dtype?: WeightDtype;
  /** Decoder linear weights as llama.cpp blocks: 'int8' → Q8_0, 'int4' → Q4_0 (vLLM's --quantization). */
  quantization?: QuantizationOption;
  /**
   * Packed weights (bf16, int8, int4) on the tensorflow and wasm backends run @weft/cpu-kernels (default true):
   * Q8_0/Q4_0 quantize activations to Q8_0 blocks as llama.cpp does. false: dequantize per op into tfjs's matmul.
   * Options pick the path and threads per call (`{ isa: 'avx2', threads: 2 }`; default: the best path, 1 thread).
   */
  cpuKernels?: boolean | CpuKernelsOptions;
  /**
   * Run each rank's step on the model's device plan — the same layers, recorded once and run without
   * tfjs: the host executor (@weft/cpu-kernels) on the tensorflow and wasm backends, the WebGPU executor
   * (weights, paged KV and activations in GPU buffers, one submit per boundary) on webgpu.
   * 'auto' (default): wherever an executor runs every op of the model's plan — on the CPU backends only
   * for packed weights (dtype bfloat16, quantization), fp32 staying on TensorFlow's matmul;
   * true: wherever an executor can (fp32 on the CPU too); false: always the tfjs path.
   * `LLM.stepPath` says what each rank runs.
   */
  devicePlan?: DevicePlanOption;
  /** Deprecated alias: `webgpuStep: false` is `devicePlan: false`. */
  webgpuStep?: boolean;
  /** Collective and rendezvous timeout per blocking wait. */
  timeoutMs?: number;
  /** MoE token exchange under expert parallelism (default allgather). */
  moeDispatch?: 'allgather' | 'alltoall';
  /** MLA models (DeepSeek): KV cache of compressed latents (default) or full per-head K/V. */
  mlaKvCache?: 'latent' | 'full';
  /** Record a per-rank timeline (see `trace()`). */
  trace?: boolean;
  /** Weight-loading progress, summed over ranks. */
  onProgress?: (loaded: number, total: number) => void;
  /** Starts the ranks; default worker threads (spawnRanks). Processes over TCP: see @weft/comm startProcessRanks. */
  spawn?: (opts: SpawnOptions) => Promise<RankPoolLike>;
  /** Threads per rank for the tensorflow backend's intra-op pool (passed to the launcher). */
  intraOpThreads?: number;
  /** Launcher diagnostics (passed to the launcher). */
  verbose?: boolean;
  /** Longest prompt + output (default: the config's max_position_embeddings). */
  maxModelLen?: number;
  /** Tokens per KV block (default 16). */
  blockSize?: number;
  /** Token budget of one step (default 2048): longer prompts are prefilled in chunks. */
  maxNumBatchedTokens?: number;
  /** Sequences per step and replica (default 64). */
  maxNumSeqs?: number;
  /** Reuse the KV blocks of shared prompt prefixes (default true). */
  enablePrefixCaching?: boolean;
}

/** Every option name, at run time; typed so that an option added to LLMOptions must be added here too. */
const OPTION_NAMES: Record<keyof LLMOptions, true> = {
  tp: true, pp: true, dp: true, enableExpertParallel: true, backend: true, dtype: true, quantization: true, cpuKernels: true,
  devicePlan: true, webgpuStep: true, timeoutMs: true, moeDispatch: true, mlaKvCache: true, trace: true, onProgress: true,
  spawn: true, intraOpThreads: true, verbose: true, maxModelLen: true, blockSize: true, maxNumBatchedTokens: true,
  maxNumSeqs: true, enablePrefixCaching: true, numKvBlocks: true, kvCacheBytes: true, kvCacheMemoryFraction: true,
};

/** vLLM's names for weft's options (`LLM(model, tensor_parallel_size=2)`), for the error that names the right one. */
const VLLM_NAMES: Record<string, keyof LLMOptions> = { tensorParallelSize: 'tp', pipelineParallelSize: 'pp', dataParallelSize: 'dp' };

/**
 * Options checked before anything starts: a misspelt or vLLM-spelt name (`tensorParallelSize`, `max_model_len`)
 * is an error naming the option to use, not a silent default; a backend outside the list fails here, not on a rank.
 */
export function checkLLMOptions(opts: LLMOptions): void {
  for (const k of Object.keys(opts)) {
    if (k in OPTION_NAMES) continue;
    const camel = k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const ours = camel in OPTION_NAMES ? camel : VLLM_NAMES[camel];
    throw new ConfigError(`LLM.load: unknown option '${k}'${ours ? ` (did you mean '${ours}'?)` : ''}; the options are ${Object.keys(OPTION_NAMES).join(', ')}`);
  }
  // In the library's words (core's check names the CLI's --tp and prints '2' as 2).
  for (const k of ['tp', 'pp', 'dp'] as const) {
    const v = opts[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new ConfigError(`LLM.load: ${k} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (opts.backend !== undefined && !BACKEND_NAMES.includes(opts.backend)) {
    throw new ConfigError(`LLM.load: backend must be one of ${BACKEND_NAMES.join(', ')}; got ${JSON.stringify(opts.backend)}`);
  }
}
