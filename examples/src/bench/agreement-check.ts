/**
 * The two halves of the teacher-forced check between weft and llama.cpp (node-llama-cpp), shared by
 * bench:cpu and agreement-probe.ts:
 * - weft: greedy tokens after a prompt with the logits each was sampled from (the step path: the device plan
 *   decodes one row at a time) and the same positions from a full-sequence forward (all rows at once: other
 *   kernel row blocks, other summation orders), whose distance to the first is weft's own rounding noise;
 * - llama.cpp: its next-token log-probabilities after the prompt and each of weft's tokens (teacher-forced).
 * And the check on the trained model that ships with the repo (models/weft-tiny-code), whose top-1 margins
 * are real (≥ 0.07 in log p), so top-1 agreement there is a meaningful pass/fail.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LLM } from '@weft/engine';
import type { LlamaContextSequence, LlamaModel } from 'node-llama-cpp';
import { compareTeacherForced, describeAgreement, logSoftmax, type Agreement } from './agreement.js';
import { llamaCheckpointToGguf, type GgufFormat } from './gguf-writer.js';
import { weftFormatOptions } from './weight-formats.js';

// node-llama-cpp is a root devDependency, imported by name at run time (a variable: never bundled).
const NODE_LLAMA_CPP = 'node-llama-cpp';

export interface WeftCheckRows {
  tokens: number[];
  /** Per generated token, the logits it was sampled from. */
  step: Float32Array[];
  /** The same positions from one full-sequence forward. */
  full: Float32Array[];
}

export async function weftCheckRows(llm: LLM, prompt: number[], steps: number): Promise<WeftCheckRows> {
  const [o] = await llm.generate([prompt], { maxTokens: steps, temperature: 0, ignoreEos: true, returnLogits: true });
  const tokens = o!.tokenIds;
  const full = (await llm.logits([...prompt, ...tokens.slice(0, -1)])).slice(prompt.length - 1);
  return { tokens, step: o!.logits!.map((r) => Float32Array.from(r)), full };
}

/** llama.cpp's log p of every vocabulary entry after `prompt` and each of `tokens` but the last (a fresh sequence). */
export async function llamaTeacherForced(seq: LlamaContextSequence, prompt: number[], tokens: number[], vocab: number): Promise<Float64Array[]> {
  await seq.clearHistory();
  const full = [...prompt, ...tokens.slice(0, -1)];
  const options = { temperature: 1, topK: 0, topP: 1, minP: 0 };
  const res = await seq.controlledEvaluate(full.map((t, i) => (i >= prompt.length - 1 ? [t, { generateNext: { probabilities: true, options } }] : t)) as never);
  return tokens.map((_, s) => {
    const row = new Float64Array(vocab).fill(-Infinity);
    for (const [tok, p] of res[prompt.length - 1 + s]!.next!.probabilities!) row[tok as number] = Math.log(p);
    return row;
  });
}

/** llama.cpp's context as node-llama-cpp makes it (fp16 K/V), and one with fp32 K/V and no flash attention. */
export const LLAMA_CONTEXTS = { default: {}, f32Kv: { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false } } as const;

/** llamaTeacherForced for each prompt in both contexts of LLAMA_CONTEXTS. */
export async function llamaBothContexts(model: LlamaModel, threads: number, cases: { prompt: number[]; tokens: number[] }[], vocab: number): Promise<Record<keyof typeof LLAMA_CONTEXTS, Float64Array[][]>> {
  const out = { default: [] as Float64Array[][], f32Kv: [] as Float64Array[][] };
  for (const k of ['default', 'f32Kv'] as const) {
    const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads, sequences: 1, ...LLAMA_CONTEXTS[k] });
    try {
      const seq = ctx.getSequence(); // one sequence a context: every prompt reuses it (cleared first)
      for (const c of cases) out[k].push(await llamaTeacherForced(seq, c.prompt, c.tokens, vocab));
    } finally {
      await ctx.dispose();
    }
  }
  return out;
}

/**
 * The check's distances, pooled over prompts: weft's step path against llama.cpp (its default context, and fp32
 * K/V), and two yardsticks of rounding noise: llama.cpp against itself (fp16 K/V against fp32) and weft's step
 * path against its own full forward.
 */
export interface CheckAgreement {
  llama: Agreement;
  llamaF32Kv: Agreement;
  llamaSelf: Agreement;
  weftSelf: Agreement;
  prompts: number;
}

export function checkAgreement(weft: WeftCheckRows[], llama: Record<keyof typeof LLAMA_CONTEXTS, Float64Array[][]>): CheckAgreement {
  return {
    llama: pool(weft.map((r, i) => compareTeacherForced(r.step, llama.default[i]!))),
    llamaF32Kv: pool(weft.map((r, i) => compareTeacherForced(r.step, llama.f32Kv[i]!))),
    llamaSelf: pool(llama.default.map((rows, i) => compareTeacherForced(rows, llama.f32Kv[i]!))),
    weftSelf: pool(weft.map((r) => compareTeacherForced(r.step, r.full.map(logSoftmax)))),
    prompts: weft.length,
  };
}

/** One line: weft against llama.cpp, then the yardsticks. */
export function describeCheck(c: CheckAgreement): string {
  const kl = (a: Agreement) => `mean KL ${a.meanKl.toExponential(1)}`;
  return (
    `weft vs llama.cpp, teacher-forced, ${c.prompts} prompt(s): ${describeAgreement(c.llama)}; ` +
    `vs llama.cpp with fp32 K/V: top-1 equal ${c.llamaF32Kv.equal}/${c.llamaF32Kv.steps.length}, ${kl(c.llamaF32Kv)}. ` +
    `Noise yardsticks: llama.cpp fp16 vs fp32 K/V ${kl(c.llamaSelf)}; weft step path vs its full forward ${kl(c.weftSelf)}`
  );
}

export function pool(parts: Agreement[]): Agreement {
  const steps = parts.flatMap((p) => p.steps);
  return {
    steps,
    equal: parts.reduce((t, p) => t + p.equal, 0),
    meanKl: steps.reduce((t, s) => t + s.kl, 0) / Math.max(1, steps.length),
    maxKl: Math.max(0, ...parts.map((p) => p.maxKl)),
    maxAbsLogProbDiff: Math.max(0, ...parts.map((p) => p.maxAbsLogProbDiff)),
    maxAbsProbDiff: Math.max(0, ...parts.map((p) => p.maxAbsProbDiff)),
  };
}

/**
 * models/weft-tiny-code (trained, bf16) in `format` on weft's tensorflow backend (device plan) against
 * node-llama-cpp on its GGUF twin (written into `ggufDir`, never into the model's folder), teacher-forced on
 * weft's greedy continuation of each prompt of its expected.json.
 */
export async function trainedModelCheck(modelDir: string, format: GgufFormat, ggufDir: string, threads: number): Promise<CheckAgreement> {
  const { LLM } = await import('@weft/engine');
  const cases = (JSON.parse(readFileSync(join(modelDir, 'expected.json'), 'utf8')) as { cases: { input_ids: number[]; greedy: number[] }[] }).cases;
  const vocab = (JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  mkdirSync(ggufDir, { recursive: true });
  const gguf = join(ggufDir, `model-${format}.gguf`);
  if (!existsSync(gguf)) llamaCheckpointToGguf(modelDir, gguf, () => {}, format);
  const llm = await LLM.load(modelDir, { backend: 'tensorflow', ...weftFormatOptions(format) });
  const rows: WeftCheckRows[] = [];
  try {
    for (const c of cases) rows.push(await weftCheckRows(llm, c.input_ids, c.greedy.length));
  } finally {
    await llm.close();
  }
  const nlc = (await import(/* @vite-ignore */ NODE_LLAMA_CPP)) as typeof import('node-llama-cpp');
  const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error, progressLogs: false });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  try {
    return checkAgreement(rows, await llamaBothContexts(model, threads, cases.map((c, i) => ({ prompt: c.input_ids, tokens: rows[i]!.tokens })), vocab));
  } finally {
    await model.dispose();
    await llama.dispose();
  }
}
