/**
 * Teacher-forced agreement of weft with llama.cpp on one checkpoint and its GGUF twin, for one weight format,
 * through several weft paths: the greedy tokens of weft's device plan fix the sequence; weft's plan logits
 * (generate), weft's full-sequence forward (LLM.logits), weft's tfjs path (while its tokens agree) and
 * node-llama-cpp's probabilities (its default fp16 KV cache, and fp32 K/V) are compared on it, pairwise.
 * usage: tsx examples/src/bench/agreement-probe.ts DIR FORMAT [--prompt 16] [--steps 8] [--salt 2] [--ids 1,2,3]
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { LLM } from '@weft/engine';
import { compareTeacherForced, describeAgreement, logSoftmax } from './agreement.js';
import { llamaBothContexts, weftCheckRows } from './agreement-check.js';
import { llamaCheckpointToGguf, type GgufFormat } from './gguf-writer.js';
import { weftFormatOptions } from './weight-formats.js';

const opts = { prompt: { type: 'string', default: '16' }, steps: { type: 'string', default: '8' }, salt: { type: 'string', default: '2' }, ids: { type: 'string' } } as const;
const { values: v, positionals } = parseArgs({ allowPositionals: true, options: opts });
const [dir, format] = positionals as [string, GgufFormat];
const vocab = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
const steps = Number(v.steps);
const salt = Number(v.salt);
const prompt = v.ids ? v.ids.split(',').map(Number) : Array.from({ length: Number(v.prompt) }, (_, i) => 3 + ((i * 7919 + salt * 104729) % (vocab - 3)));
// The GGUF twin goes beside the benches' random checkpoints (in tmp) only; never into a model folder of the repo.
const ggufDir = dir.startsWith(tmpdir()) ? dir : join(tmpdir(), 'weft-agreement', basename(dir));
mkdirSync(ggufDir, { recursive: true });
const gguf = join(ggufDir, `model-${format}.gguf`);
if (!existsSync(gguf)) llamaCheckpointToGguf(dir, gguf, console.error, format);

const rows: Record<string, ArrayLike<number>[]> = {};
let tokens: number[] = [];
// The device plan (its tokens fix the sequence), the tfjs path, and for the block formats the tfjs path without
// the a8 kernels (weights dequantized per op, fp32 activations): how far activation quantization alone moves logits.
const weftRuns = [{ devicePlan: true }, { devicePlan: false }, ...(format.startsWith('q') ? [{ devicePlan: false, cpuKernels: false }] : [])];
for (const run of weftRuns) {
  const { devicePlan } = run;
  const llm = await LLM.load(dir, { ...weftFormatOptions(format), ...run, maxModelLen: 512 });
  try {
    const r = await weftCheckRows(llm, prompt, steps);
    if (devicePlan) {
      tokens = r.tokens;
      rows['weft full forward'] = r.full;
    }
    // Generated logits are teacher-forced on `tokens` only up to the first token that differs.
    const same = r.tokens.findIndex((t, i) => t !== tokens[i]);
    rows[`weft ${llm.stepPath}${'cpuKernels' in run ? ', weight-only' : ''}`] = r.step.slice(0, same < 0 ? steps : same + 1);
  } finally {
    await llm.close();
  }
}

const nlc = await import('node-llama-cpp');
const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error, progressLogs: false });
const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
// Its default context (fp16 K/V, flash attention 'auto'), then fp32 K/V without flash attention: how much of the
// difference to weft is llama.cpp's own attention rounding.
const both = await llamaBothContexts(model, 2, [{ prompt, tokens }], vocab);
rows['llama.cpp'] = both.default[0]!;
rows['llama.cpp f32 KV'] = both.f32Kv[0]!;
await model.dispose();
await llama.dispose();

console.log(`${dir} ${format}: prompt ${prompt.length} tokens, weft plan tokens ${tokens.join(' ')}`);
const names = Object.keys(rows);
for (let i = 0; i < names.length; i++)
  for (let j = i + 1; j < names.length; j++) {
    const n = Math.min(rows[names[i]!]!.length, rows[names[j]!]!.length);
    // logSoftmax of a row of log-probabilities is itself (−∞ entries stay −∞).
    const ref = rows[names[j]!]!.slice(0, n).map(logSoftmax);
    console.log(`${names[i]} vs ${names[j]} (${n} steps): ${describeAgreement(compareTeacherForced(rows[names[i]!]!.slice(0, n), ref))}`);
  }
