/** The wasm backend addresses at most 4 GB per instance (one per rank): refuse, before any worker starts, a layout that would not fit. */
import { Checkpoint, ConfigError } from '@weft/core';

export const WASM_MAX_BYTES = 4 * 1024 ** 3;

/** Refuse, before any worker starts, a layout whose ranks would not fit the wasm heap; say which would. */
export function checkWasmFits(modelDir: string, tp: number, pp: number): void {
  const ckpt = Checkpoint.open(modelDir);
  let elements = 0;
  try {
    for (const n of ckpt.names()) elements += ckpt.info(n).shape.reduce((a, b) => a * b, 1);
  } finally {
    ckpt.close();
  }
  checkWasmFitsElements(elements, tp, pp, modelDir);
}

export function checkWasmFitsElements(elements: number, tp: number, pp: number, what: string): void {
  // Weights are held as fp32, and XNNPACK keeps a packed copy of every weight matrix it multiplies by
  // (TinyLlama at 1.7 GB per rank runs; a 2.2 GB MoE block aborts): budget 45% of the heap for weights.
  const perRank = (elements * 4) / (tp * pp);
  const budget = WASM_MAX_BYTES * 0.45;
  if (perRank <= budget) return;
  const need = Math.ceil((elements * 4) / budget);
  throw new ConfigError(
    `${what}: ${((elements * 4) / 1e9).toFixed(2)} GB of fp32 weights over tp×pp=${tp * pp} ranks is ` +
      `${(perRank / 1e9).toFixed(2)} GB per rank, over what one wasm rank holds (${(budget / 1e9).toFixed(1)} GB of weights: 4 GB heap, packed copies); ` +
      `use tp×pp ≥ ${need} (e.g. --tp ${nextPow2(need)}) or another backend`,
  );
}

function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

