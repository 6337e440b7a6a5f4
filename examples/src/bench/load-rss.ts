/**
 * Peak and settled RSS while loading a TinyLlama-shaped random checkpoint
 * (bf16 on disk, random-checkpoint.ts) at tp 1 in each weight format, and after one generation, with where
 * the resident memory is (rss.ts): the ranks are worker threads, so this process's RSS is the rank's.
 * usage: tsx examples/src/bench/load-rss.ts [float32|bfloat16|int8|int4|int4+bfloat16] [--backend B] [--dir D] [--device-plan false]
 * (--dir: a model directory to load as it is, or an empty place for the random checkpoint)
 * One format per process (a process's RSS does not shrink back for the next).
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { checkpointHeldBytes, resolveWeightFormat, type BackendName } from '@weft/core';
import { LLM, type LLMOptions } from '@weft/engine';
import { hasRandomLlama, SHAPES, writeRandomLlama } from './random-checkpoint.js';
import { describeRss, rssBreakdown } from './rss.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { backend: { type: 'string' }, dir: { type: 'string' }, 'device-plan': { type: 'string' } } });
const format = positionals[0] ?? 'int4';
const dir = values.dir ?? join(tmpdir(), 'weft-random-tinyllama');
// Only write random weights where no model is: a --dir that holds a config.json is loaded as it is.
if (!hasRandomLlama(dir) && !existsSync(join(dir, 'config.json'))) writeRandomLlama(dir, SHAPES.tinyllama!, (m) => console.error(m));

// FORMAT: float32 | bfloat16 | int8 | int4, or a quantization with a dtype: int4+bfloat16.
const opts: { dtype?: string; quantization?: string } = {};
for (const part of format.split('+')) opts[part === 'bfloat16' || part === 'float32' ? 'dtype' : 'quantization'] = part;
const fmt = resolveWeightFormat(opts);
const gb = (b: number) => (b / 1e9).toFixed(2);
const base = process.memoryUsage().rss;
console.error(`before load: ${describeRss(rssBreakdown()!)}`);
let peak = base;
const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
const t0 = performance.now();
const devicePlan = values['device-plan'] === undefined ? undefined : values['device-plan'] === 'true';
const llm = await LLM.load(dir, { ...(opts as Pick<LLMOptions, 'dtype' | 'quantization'>), backend: values.backend as BackendName | undefined, numKvBlocks: 16, maxModelLen: 256, devicePlan });
const loadS = (performance.now() - t0) / 1000;
const settled = process.memoryUsage().rss;
clearInterval(timer);
console.error(`after load (${llm.stepPath}): ${describeRss(rssBreakdown()!)}`);
await llm.generate([Array.from({ length: 128 }, (_, i) => 3 + i)], { maxTokens: 64, temperature: 0, ignoreEos: true });
const after = rssBreakdown()!;
console.error(`after a 128 + 64 token generation: ${describeRss(after)}`);
const held = checkpointHeldBytes(dir, fmt);
console.log(
  JSON.stringify({
    format, backend: llm.backend, stepPath: llm.stepPath, loadSeconds: +loadS.toFixed(1), heldWeightGB: +gb(held), rankWeightGB: +gb(llm.weightBytesPerRank[0]!),
    rssBeforeGB: +gb(base), rssPeakGB: +gb(peak), rssSettledGB: +gb(settled), peakOverHeld: +((peak - base) / held).toFixed(2),
    afterGenerate: Object.fromEntries(Object.entries(after).map(([k, x]) => [k, +gb(x)])),
  }),
);
await llm.close();
