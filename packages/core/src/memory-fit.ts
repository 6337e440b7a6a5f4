/**
 * Before any rank starts: will the weights fit? Ranks hold weights as fp32
 * whatever the checkpoint's dtype, unless `format` says bf16 or quantized
 * blocks: then the compressed bytes are counted. Two limits:
 * - wasm: one instance addresses 4 GB, and XNNPACK keeps a packed copy of each
 *   weight matrix it multiplies by, so a rank holds ~1.9 GB of weights;
 * - every backend: the ranks on this host together need the host's memory.
 * The error names the layout that would fit.
 */
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import type { BackendName } from './backend.js';
import { tensorflowInstalled } from './backend.js';
import { Checkpoint } from './checkpoint.js';
import { ConfigError } from './errors.js';
import { heldTensorBytes, type WeightFormat } from './weight-format.js';

/** The wasm backend addresses at most 4 GB per instance (one per rank); past it, it fails with a bare "memory access out of bounds". */
export const WASM_MAX_BYTES = 4 * 1024 ** 3;
/** Weights take at most this share of a wasm heap: TinyLlama at 1.7 GB per rank runs; a 2.2 GB MoE block aborts. */
const WASM_WEIGHT_SHARE = 0.45;
/** What a rank costs besides its weights: the runtime, TensorFlow's start-up (~400 MB RSS), activations. */
export const RANK_OVERHEAD_BYTES = 512 * 1024 ** 2;

export interface WeightsFitOptions {
  tp: number;
  pp: number;
  /** Data-parallel replicas: each holds the whole model. */
  dp?: number;
  /** The backend asked for; undefined = the automatic choice (tensorflow when installed, else wasm). */
  backend?: BackendName;
  /** Ranks of the job on this host; default all of them (worker threads). */
  localRanks?: number;
  /** Bytes free on this host; default MemAvailable from /proc/meminfo (os.freemem() elsewhere). */
  availableBytes?: number;
  /** How the ranks hold the weights (default fp32, unquantized). */
  format?: WeightFormat;
}

/** Number of weight elements in a checkpoint directory (headers only). */
export function checkpointElements(modelDir: string): number {
  const ckpt = Checkpoint.open(modelDir);
  let elements = 0;
  try {
    for (const n of ckpt.names()) elements += ckpt.info(n).shape.reduce((a, b) => a * b, 1);
  } finally {
    ckpt.close();
  }
  return elements;
}

/** Bytes the ranks together hold for one copy of the checkpoint's weights in `format` (headers only). */
export function checkpointHeldBytes(modelDir: string, format: WeightFormat): number {
  const ckpt = Checkpoint.open(modelDir);
  let bytes = 0;
  try {
    for (const n of ckpt.names()) bytes += heldTensorBytes(n, ckpt.info(n).shape, format);
  } finally {
    ckpt.close();
  }
  return bytes;
}

/** Refuse, before any rank starts, a layout whose weights would not fit; say which would. */
export function checkWeightsFit(modelDir: string, opts: WeightsFitOptions): void {
  const format = opts.format ?? { dtype: 'float32', quantization: null };
  checkWeightsFitBytes(checkpointHeldBytes(modelDir, format), modelDir, opts);
}

export function checkWeightsFitElements(elements: number, what: string, opts: WeightsFitOptions): void {
  checkWeightsFitBytes(elements * 4, what, opts);
}

/** `total`: bytes of one copy of the weights as the ranks hold them (see checkpointHeldBytes). */
export function checkWeightsFitBytes(total: number, what: string, opts: WeightsFitOptions): void {
  const { tp, pp } = opts;
  const dp = opts.dp ?? 1;
  const backend = opts.backend ?? ('missing' in tensorflowInstalled() ? 'wasm' : 'tensorflow');
  const kind = describeFormat(opts.format);
  const perRank = total / (tp * pp);
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  if (backend === 'wasm') {
    const budget = WASM_MAX_BYTES * WASM_WEIGHT_SHARE;
    if (perRank > budget) {
      const need = Math.ceil(total / budget);
      throw new ConfigError(
        `${what}: ${gb(total)} of ${kind} weights over tp×pp=${tp * pp} ranks is ${gb(perRank)} per rank, over what one wasm rank holds ` +
          `(${(budget / 1e9).toFixed(1)} GB of weights: 4 GB heap, packed copies); use tp×pp ≥ ${need} (e.g. --tp ${nextPow2(need)}) or the tensorflow backend (npm run setup:tensorflow)`,
      );
    }
  }
  const localRanks = opts.localRanks ?? tp * pp * dp;
  const available = opts.availableBytes ?? availableMemory();
  const needed = localRanks * (perRank + RANK_OVERHEAD_BYTES);
  if (needed <= available) return;
  // Ranks of one host share its memory whatever the split: spreading them over hosts is what helps.
  const perHostFits = Math.floor(available / (perRank + RANK_OVERHEAD_BYTES));
  const minShards = Math.ceil(total / Math.max(1, available - RANK_OVERHEAD_BYTES));
  throw new ConfigError(
    `${what}: ${localRanks} rank(s) on this host need ${gb(needed)} (${gb(perRank)} of ${kind} weights each at tp ${tp} × pp ${pp}${dp > 1 ? ` × dp ${dp}` : ''}, ` +
      `plus ~${gb(RANK_OVERHEAD_BYTES)} per rank), but ${gb(available)} is available; ` +
      (perHostFits >= 1
        ? `this host holds ${perHostFits} such rank(s): run the other ranks on more hosts (weft launch / mpirun, docs/multi-host.md)`
        : `one rank fits only at tp×pp ≥ ${minShards} with at most one rank per host (weft launch / mpirun, docs/multi-host.md)`),
  );
}

/** MemAvailable on Linux (what can be allocated without swapping), os.freemem() elsewhere. */
export function availableMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    /* not Linux */
  }
  return freemem();
}

function describeFormat(f: WeightFormat | undefined): string {
  if (!f) return 'fp32';
  const base = f.dtype === 'bfloat16' ? 'bf16' : 'fp32';
  return f.quantization ? `${f.quantization}/${base}` : base;
}

function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}
