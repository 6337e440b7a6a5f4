/**
 * Peak and settled RSS while loading a TinyLlama-shaped random checkpoint
 * (bf16 on disk, random-checkpoint.ts) at tp 1 in each weight format: the
 * ranks are worker threads, so this process's RSS is the rank's.
 * usage: tsx examples/src/bench/load-rss.ts [float32|bfloat16|int8|int4] [--backend B] [--dir D]
 * One format per process (a process's RSS does not shrink back for the next).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { checkpointHeldBytes, resolveWeightFormat, type BackendName } from '@weft/core';
import { LLM } from '@weft/engine';
import { hasRandomLlama, SHAPES, writeRandomLlama } from './random-checkpoint.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { backend: { type: 'string' }, dir: { type: 'string' } } });
const format = positionals[0] ?? 'int4';
const dir = values.dir ?? join(tmpdir(), 'weft-random-tinyllama');
if (!hasRandomLlama(dir)) writeRandomLlama(dir, SHAPES.tinyllama!, (m) => console.error(m));

const opts = format === 'bfloat16' || format === 'float32' ? { dtype: format } : { quantization: format as 'int8' | 'int4' };
const fmt = resolveWeightFormat(opts);
const gb = (b: number) => (b / 1e9).toFixed(2);
const base = process.memoryUsage().rss;
let peak = base;
const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
const t0 = performance.now();
const llm = await LLM.load(dir, { ...opts, backend: values.backend as BackendName | undefined, numKvBlocks: 16, maxModelLen: 256 });
const loadS = (performance.now() - t0) / 1000;
const settled = process.memoryUsage().rss;
clearInterval(timer);
const held = checkpointHeldBytes(dir, fmt);
console.log(
  JSON.stringify({
    format, backend: llm.backend, loadSeconds: +loadS.toFixed(1), heldWeightGB: +gb(held), rankWeightGB: +gb(llm.weightBytesPerRank[0]!),
    rssBeforeGB: +gb(base), rssPeakGB: +gb(peak), rssSettledGB: +gb(settled), peakOverHeld: +((peak - base) / held).toFixed(2),
  }),
);
await llm.close();
