/** Reading the Hugging Face reference fixtures (fixtures/README.md says how to judge a match). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface FixtureCase {
  input_ids: number[];
  logits_shape: [number, number];
  logits: number[];
  greedy: number[];
  greedy_min_margin: number;
}

export const FIXTURES_DIR = fileURLToPath(new URL('../../../fixtures/', import.meta.url));

export function fixtureDir(name: string): string {
  return `${FIXTURES_DIR}${name}`;
}

export function loadCases(dir: string): FixtureCase[] {
  return (JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8')) as { cases: FixtureCase[] }).cases;
}

/** max |a − b| and relative L2 error ‖a − b‖ / ‖b‖. */
export function compareLogits(got: ArrayLike<number>[], want: number[]): { maxAbs: number; relL2: number } {
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
