import { ConfigError } from './errors.js';

/**
 * `[start, end)` layers of pipeline stage `ppRank`: vLLM's `get_pp_indices`.
 * L // P layers each; the remainder goes one each to stages P-2, P-3, ... (never
 * the last, which also computes the LM head). An explicit partition overrides it.
 */
export function getPpIndices(numLayers: number, ppRank: number, ppSize: number, partition?: number[]): [number, number] {
  const parts = partition ?? defaultPartition(numLayers, ppSize);
  validatePartition(parts, numLayers, ppSize);
  const start = parts.slice(0, ppRank).reduce((a, b) => a + b, 0);
  return [start, start + parts[ppRank]!];
}

export function defaultPartition(numLayers: number, ppSize: number): number[] {
  if (ppSize > numLayers) {
    throw new ConfigError(`pp=${ppSize} is larger than num_hidden_layers=${numLayers}: every stage needs a layer`);
  }
  const parts = Array.from({ length: ppSize }, () => Math.floor(numLayers / ppSize));
  const rem = numLayers % ppSize;
  for (let i = 0; i < rem; i++) parts[ppSize - 2 - i]! += 1;
  return parts;
}

function validatePartition(parts: number[], numLayers: number, ppSize: number): void {
  if (parts.length !== ppSize) {
    throw new ConfigError(`pp partition ${JSON.stringify(parts)} has ${parts.length} stages but pp=${ppSize}`);
  }
  if (parts.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new ConfigError(`pp partition ${JSON.stringify(parts)}: every stage needs a positive whole number of layers`);
  }
  const total = parts.reduce((a, b) => a + b, 0);
  if (total !== numLayers) {
    throw new ConfigError(`pp partition ${JSON.stringify(parts)} sums to ${total}, num_hidden_layers=${numLayers}`);
  }
}
