/**
 * Judging a match against Hugging Face reference fixtures (`expected.json`
 * next to a checkpoint; fixtures/README.md): logits max |Δ| ≤ 1e-3 and
 * relative L2 ≤ 1e-4; greedy tokens equal wherever the reference margin ≥ 2e-3.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensorflowInstalled, type BackendName } from '@weft/core';

/**
 * The CPU backends every HF-parity suite runs on: wasm always, tensorflow when tfjs-node is built
 * (`npm run setup:tensorflow`). `skip` says why a backend's suites are skipped; print it.
 */
export function parityBackends(): { backend: BackendName; skip: string | null }[] {
  const tf = tensorflowInstalled();
  return [
    { backend: 'wasm', skip: null },
    { backend: 'tensorflow', skip: 'missing' in tf ? `SKIPPED (tensorflow backend): ${tf.missing}` : null },
  ];
}

export interface FixtureCase {
  input_ids: number[];
  logits_shape: [number, number];
  logits: number[];
  greedy: number[];
  greedy_min_margin: number;
}

export function loadFixtureCases(dir: string): FixtureCase[] {
  return (JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { cases: FixtureCase[] }).cases;
}

/** max |a − b| and relative L2 error ‖a − b‖ / ‖b‖ over row-major logits. */
export function compareLogits(got: ArrayLike<number>[], want: ArrayLike<number>): { maxAbs: number; relL2: number } {
  let maxAbs = 0;
  let num = 0;
  let den = 0;
  let k = 0;
  for (const row of got) {
    for (let j = 0; j < row.length; j++, k++) {
      const d = row[j]! - want[k]!;
      maxAbs = Math.max(maxAbs, Math.abs(d));
      num += d * d;
      den += want[k]! * want[k]!;
    }
  }
  if (k !== want.length) throw new Error(`logits size ${k} ≠ reference size ${want.length}`);
  return { maxAbs, relL2: Math.sqrt(num / den) };
}

/** Steps of a greedy path (teacher forced: `rows[i]` predicts token i) where ours differs although the reference margin was ≥ minMargin. */
export function greedyMismatches(rows: ArrayLike<number>[], greedy: number[], minMargin = 2e-3): number[] {
  const bad: number[] = [];
  greedy.forEach((tok, i) => {
    const row = rows[i]!;
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    const sorted = Array.from(row).sort((a, b) => b - a);
    if (best !== tok && sorted[0]! - sorted[1]! >= minMargin) bad.push(i);
  });
  return bad;
}
