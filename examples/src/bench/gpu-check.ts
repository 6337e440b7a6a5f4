/**
 * Fixture parity on one backend (meant for webgpu on the GPU machine): every
 * fixture's expected.json logits at each tp, several ranks sharing the device.
 * Judge: max |Δ| ≤ 1e-3 and relative L2 ≤ 1e-4 (fixtures/README.md).
 *
 * usage: node examples/dist/bench/gpu-check.js [--backend webgpu] [--tp 1,2]
 *          [--fixtures llama-tiny,llama-bf16,deepseek-v3-tiny,deepseek-v2-lite-tiny] [--out FILE]
 * Exit code 1 when any case fails or a layout cannot start.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, type BackendName } from '@weft/core';
import { compareLogits, loadFixtureCases } from '@weft/layers';
import { loadModel } from '../cli/load-model.js';

const MAX_ABS = 1e-3;
const MAX_REL_L2 = 1e-4;

const { values: v } = parseArgs({
  options: {
    backend: { type: 'string', default: 'webgpu' },
    tp: { type: 'string', default: '1,2' },
    fixtures: { type: 'string', default: 'llama-tiny,llama-bf16,deepseek-v3-tiny,deepseek-v2-lite-tiny' },
    'fixtures-dir': { type: 'string', default: 'fixtures' },
    out: { type: 'string' },
  },
});
const backend = v.backend as BackendName;
if (!BACKEND_NAMES.includes(backend)) throw new Error(`--backend must be one of ${BACKEND_NAMES.join(', ')}`);
const log = (m: string) => process.stderr.write(`[gpu-check] ${m}\n`);

interface Row {
  fixture: string;
  tp: number;
  case: number;
  maxAbs: number | null;
  relL2: number | null;
  pass: boolean;
  loadS?: number;
  error?: string;
}

const rows: Row[] = [];
for (const name of String(v.fixtures).split(',')) {
  const dir = resolve(String(v['fixtures-dir']), name);
  const cases = loadFixtureCases(dir);
  for (const tp of String(v.tp).split(',').map(Number)) {
    const t0 = performance.now();
    let llm;
    try {
      llm = await loadModel(dir, { tp, backend, timeoutMs: 120_000 });
    } catch (e) {
      rows.push({ fixture: name, tp, case: -1, maxAbs: null, relL2: null, pass: false, error: (e as Error).message });
      log(`${name} tp=${tp}: FAILED to start: ${(e as Error).message}`);
      continue;
    }
    const loadS = (performance.now() - t0) / 1000;
    try {
      for (const [i, c] of cases.entries()) {
        try {
          const got = await llm.logits(c.input_ids);
          const { maxAbs, relL2 } = compareLogits(got, c.logits);
          const pass = maxAbs <= MAX_ABS && relL2 <= MAX_REL_L2;
          rows.push({ fixture: name, tp, case: i, maxAbs, relL2, pass, loadS });
          log(`${name} tp=${tp} case ${i}: max|Δ| ${maxAbs.toExponential(2)} relL2 ${relL2.toExponential(2)} ${pass ? 'ok' : 'FAIL'}`);
          // The engine's step (the device plan where the ranks run it): the prompt's last row, as generate samples from it.
          const [o] = await llm.generate([c.input_ids], { maxTokens: 1, returnLogits: true, ignoreEos: true });
          const V = c.logits_shape[1];
          const step = compareLogits([o!.logits![0]!], c.logits.slice(c.logits.length - V));
          const stepPass = step.maxAbs <= MAX_ABS && step.relL2 <= MAX_REL_L2;
          rows.push({ fixture: `${name} (step: ${llm.stepPath})`, tp, case: i, maxAbs: step.maxAbs, relL2: step.relL2, pass: stepPass, loadS });
          log(`${name} tp=${tp} case ${i} step (${llm.stepPath}): max|Δ| ${step.maxAbs.toExponential(2)} relL2 ${step.relL2.toExponential(2)} ${stepPass ? 'ok' : 'FAIL'}`);
        } catch (e) {
          rows.push({ fixture: name, tp, case: i, maxAbs: null, relL2: null, pass: false, loadS, error: (e as Error).message });
          log(`${name} tp=${tp} case ${i}: ERROR ${(e as Error).message}`);
        }
      }
      // Written before closing: a process whose Dawn-holding worker threads end can segfault on the way out.
      writeOut();
    } finally {
      await llm.close();
    }
  }
}

const failed = rows.filter((r) => !r.pass);
console.log(`\nfixture parity on ${backend}: ${rows.length - failed.length}/${rows.length} cases pass (max |Δ| ≤ ${MAX_ABS}, rel L2 ≤ ${MAX_REL_L2})\n`);
console.log('| fixture | tp | cases | worst max abs | worst rel L2 | result |\n| --- | --- | --- | --- | --- | --- |');
const keys = [...new Set(rows.map((r) => `${r.fixture}\u0000${r.tp}`))];
for (const k of keys) {
  const [fixture, tp] = k.split('\u0000') as [string, string];
  const rs = rows.filter((r) => r.fixture === fixture && String(r.tp) === tp);
  const worst = (f: (r: Row) => number | null) => Math.max(...rs.map((r) => f(r) ?? Infinity));
  const ok = rs.every((r) => r.pass);
  const err = rs.find((r) => r.error)?.error;
  console.log(`| ${fixture} | ${tp} | ${rs.length} | ${worst((r) => r.maxAbs).toExponential(2)} | ${worst((r) => r.relL2).toExponential(2)} | ${ok ? 'pass' : `FAIL${err ? `: ${err.slice(0, 120)}` : ''}`} |`);
}
writeOut();
process.exit(failed.length ? 1 : 0);

function writeOut(): void {
  if (!v.out) return;
  mkdirSync(dirname(String(v.out)), { recursive: true });
  writeFileSync(String(v.out), JSON.stringify({ date: new Date().toISOString(), backend, bounds: { maxAbs: MAX_ABS, relL2: MAX_REL_L2 }, rows }, null, 2));
  log(`wrote ${join(String(v.out))}`);
}
