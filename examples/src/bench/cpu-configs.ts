/** bench:cpu's shapes, configurations (engine × layout × weight format) and what a decode token reads. */
import { availableParallelism } from 'node:os';
import type { RunResult } from './cpu-child.js';
import type { GgufFormat } from './gguf-writer.js';
import { paramCount, type LlamaShape } from './random-checkpoint.js';

export const CPU_SHAPES: Record<string, LlamaShape> = {
  small: { name: 'small', hidden: 1024, layers: 8, heads: 16, kvHeads: 4, intermediate: 2816, vocab: 32000 },
  tinyllama: { name: 'tinyllama', hidden: 2048, layers: 22, heads: 32, kvHeads: 4, intermediate: 5632, vocab: 32000 },
};

export interface Config {
  id: string;
  engine: 'weft' | 'llama.cpp';
  backend?: 'tensorflow' | 'wasm';
  tp: number;
  pp: number;
  /** llama.cpp threads; for weft, TF intra-op threads per rank (tensorflow) or 1 (wasm). */
  threads: number;
  /** The weights: weft's load option and the GGUF file of the same numbers. */
  format: GgufFormat;
  /** weft: LLMOptions.devicePlan (absent: 'auto', the device plan for packed weights). */
  devicePlan?: boolean;
}

export const CORES = availableParallelism();
const LAYOUTS: Omit<Config, 'format'>[] = [
  // TF intra-op threads: the cores ÷ the ranks of the host (pp stages run one after another at batch 1, but each is its own rank).
  { id: 'weft tensorflow tp1', engine: 'weft', backend: 'tensorflow', tp: 1, pp: 1, threads: Math.max(1, CORES) },
  { id: 'weft tensorflow tp2', engine: 'weft', backend: 'tensorflow', tp: 2, pp: 1, threads: Math.max(1, Math.floor(CORES / 2)) },
  { id: 'weft tensorflow pp2', engine: 'weft', backend: 'tensorflow', tp: 1, pp: 2, threads: Math.max(1, Math.floor(CORES / 2)) },
  // The same rank on the tfjs path (no device plan): what the plan replaces, in the same run.
  { id: 'weft tensorflow tfjs path tp1', engine: 'weft', backend: 'tensorflow', tp: 1, pp: 1, threads: Math.max(1, CORES), devicePlan: false },
  { id: 'weft wasm tp1', engine: 'weft', backend: 'wasm', tp: 1, pp: 1, threads: 1 },
  { id: 'weft wasm tp2', engine: 'weft', backend: 'wasm', tp: 2, pp: 1, threads: 1 },
  { id: 'weft wasm pp2', engine: 'weft', backend: 'wasm', tp: 1, pp: 2, threads: 1 },
  { id: 'llama.cpp 1 thread', engine: 'llama.cpp', tp: 1, pp: 1, threads: 1 },
  { id: 'llama.cpp 2 threads', engine: 'llama.cpp', tp: 1, pp: 1, threads: 2 },
];
export const FORMATS: GgufFormat[] = ['f32', 'bf16', 'q8_0', 'q4_0'];
export const CONFIGS: Config[] = FORMATS.flatMap((format) => LAYOUTS.map((l) => ({ ...l, id: `${l.id} ${format}`, format })));


/** Cores reading weights at once during a decode step (what the bound's bandwidth is measured at). */
export function readers(c: Config): number {
  if (c.engine === 'llama.cpp') return c.threads;
  // The device plan's kernels run cores ÷ ranks threads per rank (the tfjs path's packed kernels one); pp stages take
  // turns at batch 1: one stage's ranks read at a time.
  if (c.format === 'f32') return c.tp * c.threads;
  return c.devicePlan === false ? c.tp : c.tp * Math.max(1, Math.floor(CORES / (c.tp * c.pp)));
}

/** Bytes decode reads per token: every weight but the input embedding (a row gather). */
export function decodeBytes(s: LlamaShape, c: Config, r: RunResult | undefined, ggufBytes: number): number {
  const embed = s.vocab * s.hidden;
  if (c.engine === 'llama.cpp') return ggufBytes - embed * (c.format === 'f32' ? 4 : 2);
  // weightBytesPerRank counts the embedding on the first rank: fp32, or bf16 with dtype 'bfloat16' (every other format here)
  const total = r?.weightBytesPerRank?.reduce((a, b) => a + b, 0);
  const embedBytes = embed * (c.format === 'f32' ? 4 : 2);
  return total ? total - embedBytes : (paramCount(s) - embed) * 4;
}
