/**
 * Filling a model's Parameters from a Hugging Face checkpoint, strictly
 * (nanoGPT's `from_pretrained` habit): every parameter must be loaded, every
 * shape checked, unused checkpoint tensors reported. Models declare how
 * checkpoint names map onto fused parameters (vLLM's `stacked_params_mapping`).
 */
import { CheckpointError } from '@weft/core';
import { EmbeddingWeight } from './embedding-weight.js';
import { LinearWeight } from './linear/linear-weight.js';
import type { HostTensor, Parameter, ShardId, WeightHandle } from './parameter.js';
import type { QuantizationConfig } from './quantization/quantization-config.js';

/** What a loader reads from: `Checkpoint` of @weft/core, or anything shaped like it. */
export interface CheckpointReader {
  names(): string[];
  info(name: string): { shape: readonly number[] };
  read(name: string): HostTensor;
  narrow(name: string, dim: number, start: number, length: number): HostTensor;
}

/** `q_proj → qkv_proj` (shard 'q'): a checkpoint name part and the fused parameter part it loads into. */
export interface StackedParamMapping {
  param: string;
  checkpoint: string;
  shardId: ShardId;
}

export interface LoadWeightsOptions {
  params: Iterable<Parameter>;
  checkpoint: CheckpointReader;
  stacked?: StackedParamMapping[];
  /** Checkpoint tensors that are never weights (e.g. `rotary_emb.inv_freq`). */
  ignore?: (name: string) => boolean;
  /** Tensors that belong to another pipeline stage (or expert rank): skipped, not reported as unused. */
  elsewhere?: (name: string) => boolean;
  onProgress?: (loaded: number, total: number, name: string) => void;
  /** How linear weights are held (bf16, Q8_0, Q4_0); absent: fp32. Each tensor is packed as it is read. */
  quantization?: QuantizationConfig;
}

export interface LoadWeightsResult {
  /** Checkpoint tensors no parameter of this model took. */
  unused: string[];
  /** Parameters filled. */
  loaded: number;
  /** Weights the quantization would take but this rank keeps unquantized, with why. */
  unquantized: string[];
  /** Bytes this rank holds for its parameters. */
  bytes: number;
}

export function loadWeights(opts: LoadWeightsOptions): LoadWeightsResult {
  const byName = new Map<string, Parameter>();
  for (const p of opts.params) byName.set(p.name, p);
  const unquantized: string[] = [];
  const linear = [...byName.values()].filter((p): p is LinearWeight => p instanceof LinearWeight);
  if (opts.quantization) {
    for (const w of linear) {
      w.useMethod(opts.quantization.getQuantMethod(w));
      const why = opts.quantization.skipReason(w);
      if (why) unquantized.push(`${w.name} (${why})`);
    }
    for (const p of byName.values()) if (p instanceof EmbeddingWeight) p.useDtype(opts.quantization.format.dtype);
  }
  const unused: string[] = [];
  // Resolve every name first so progress counts only what this rank loads.
  const work: { name: string; param: Parameter; shardId?: ShardId }[] = [];
  for (const name of opts.checkpoint.names()) {
    if (opts.ignore?.(name)) continue;
    const target = resolve(name, opts.stacked ?? [], byName);
    if (target) work.push({ name, ...target });
    else if (!opts.elsewhere?.(name)) unused.push(name);
  }
  work.forEach(({ name, param, shardId }, i) => {
    param.load(handle(opts.checkpoint, name), shardId);
    opts.onProgress?.(i + 1, work.length, name);
  });
  const missing = [...byName.values()].filter((p) => !p.loaded);
  if (missing.length > 0) {
    const list = missing.slice(0, 8).map((p) => describeMissing(p, opts.stacked ?? [])).join('; ');
    throw new CheckpointError(
      `checkpoint is missing ${missing.length} tensor(s) this model needs: ${list}${missing.length > 8 ? '; ...' : ''}`,
    );
  }
  for (const w of linear) w.quantMethod.processWeightsAfterLoading(w);
  const bytes = [...byName.values()].reduce((a, p) => a + p.bytes, 0);
  return { unused, loaded: byName.size, unquantized, bytes };
}

function resolve(
  name: string,
  stacked: StackedParamMapping[],
  byName: Map<string, Parameter>,
): { param: Parameter; shardId?: ShardId } | null {
  for (const m of stacked) {
    if (!name.includes(m.checkpoint)) continue;
    const param = byName.get(name.replace(m.checkpoint, m.param));
    if (param) return { param, shardId: m.shardId };
  }
  const param = byName.get(name);
  return param ? { param } : null;
}

function describeMissing(p: Parameter, stacked: StackedParamMapping[]): string {
  const parts = stacked.filter((m) => p.name.includes(m.param) && !p.loadedShards.has(m.shardId));
  if (parts.length === 0) return p.name;
  return parts.map((m) => p.name.replace(m.param, m.checkpoint)).join(', ');
}

function handle(ckpt: CheckpointReader, name: string): WeightHandle {
  return {
    name,
    shape: ckpt.info(name).shape,
    read: () => ckpt.read(name),
    narrow: (dim, start, length) => ckpt.narrow(name, dim, start, length),
  };
}
