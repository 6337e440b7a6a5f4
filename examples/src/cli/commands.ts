/** The model commands (generate, logits) and layout. */
import { writeFileSync } from 'node:fs';
import { rankLayout, resolveParallelConfig } from '@weft/core';
import type { LLM, LLMOptions } from '@weft/engine';
import { backend, devicePlan, dtype, ids, int, MODEL_OPTIONS, num, parse, positiveInt, quantization, UsageError } from './args.js';
import { defaultModelDir, loadModel } from './load-model.js';
import { out } from './output.js';
import { checkTextPrompt, checkWritable, preflight } from './preflight.js';
import { progressReporter } from './progress.js';
import { TRANSPORT_OPTIONS, transportSpawn } from './transport.js';

export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

function moeDispatch(value: unknown): 'allgather' | 'alltoall' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'allgather' && value !== 'alltoall') throw new UsageError(`--moe-dispatch must be allgather or alltoall; got '${String(value)}'`);
  return value;
}

export function engineOptions(v: Values): LLMOptions {
  return {
    tp: positiveInt(v.tp, 'tp'),
    pp: positiveInt(v.pp, 'pp'),
    dp: positiveInt(v.dp, 'dp'),
    enableExpertParallel: v['enable-expert-parallel'] === true,
    moeDispatch: moeDispatch(v['moe-dispatch']),
    backend: backend(v.backend),
    dtype: dtype(v.dtype),
    quantization: quantization(v.quantization),
    devicePlan: devicePlan(v['device-plan']),
    timeoutMs: positiveInt(v.timeout, 'timeout'),
    trace: typeof v.trace === 'string',
    spawn: transportSpawn(v),
    // tensorflow backend: its start-up log lines show only with --verbose; intra-op threads per rank.
    verbose: v.verbose === true,
    intraOpThreads: positiveInt(v['intra-op-threads'], 'intra-op-threads'),
    maxModelLen: positiveInt(v['max-model-len'], 'max-model-len'),
    maxNumSeqs: positiveInt(v['max-num-seqs'], 'max-num-seqs'),
    maxNumBatchedTokens: positiveInt(v['max-num-batched-tokens'], 'max-num-batched-tokens'),
    blockSize: positiveInt(v['block-size'], 'block-size'),
    enablePrefixCaching: prefixCaching(v),
  };
}

/** vLLM's --enable-prefix-caching / --no-enable-prefix-caching (default on). */
function prefixCaching(v: Values): boolean | undefined {
  if (v['enable-prefix-caching'] && v['no-enable-prefix-caching']) throw new UsageError('give --enable-prefix-caching or --no-enable-prefix-caching, not both');
  return v['no-enable-prefix-caching'] ? false : v['enable-prefix-caching'] ? true : undefined;
}

/** Everything that can be checked before a rank starts: options, model directory, layout, --trace path. */
export function checkedEngineOptions(v: Values, dir: string): LLMOptions {
  const opts = engineOptions(v);
  if (typeof v.trace === 'string') checkWritable(v.trace, '--trace');
  const config = preflight(dir, { tp: opts.tp, pp: opts.pp, dp: opts.dp, ep: opts.enableExpertParallel }, { dtype: opts.dtype, quantization: opts.quantization });
  if (opts.maxModelLen !== undefined && (opts.maxModelLen < 2 || opts.maxModelLen > config.maxPositionEmbeddings)) {
    throw new UsageError(`--max-model-len must be in 2..${config.maxPositionEmbeddings} (the model's max_position_embeddings), got ${opts.maxModelLen}`);
  }
  return opts;
}

async function withModel<T>(v: Values, dir: string, fn: (llm: LLM) => Promise<T>): Promise<T> {
  const opts = checkedEngineOptions(v, dir);
  const llm = await loadModel(dir, { ...opts, onProgress: progressReporter('loading weights') });
  process.stderr.write(`weft: ${llm.backend} backend${opts.backend ? '' : ' (picked automatically; --backend chooses)'}, ${llm.worldSize} rank(s), step: ${llm.stepPath}\n`);
  try {
    return await fn(llm);
  } finally {
    if (typeof v.trace === 'string') {
      writeFileSync(v.trace, JSON.stringify(llm.trace()));
      process.stderr.write(`trace written to ${v.trace} (open it in https://ui.perfetto.dev)\n`);
    }
    await llm.close();
  }
}

export async function layoutCommand(argv: string[]): Promise<void> {
  const { values: v }: { values: Values } = parse(argv, { 'world-size': { type: 'string' }, tp: { type: 'string' }, pp: { type: 'string' }, dp: { type: 'string' }, json: { type: 'boolean' } });
  const cfg = resolveParallelConfig({ worldSize: positiveInt(v['world-size'], 'world-size'), tp: positiveInt(v.tp, 'tp'), pp: positiveInt(v.pp, 'pp'), dp: positiveInt(v.dp, 'dp') });
  const l = rankLayout(cfg);
  const groups = { tp: l.tp, pp: l.pp, dp: l.dp, ep: l.ep };
  if (v.json) {
    out(JSON.stringify(groups) + '\n');
    return;
  }
  out(`world size ${l.worldSize} = dp ${cfg.dp} × pp ${cfg.pp} × tp ${cfg.tp}\n`);
  for (const [k, g] of Object.entries(groups)) out(`${k.toUpperCase().padEnd(3)} ${g.map((r) => `[${r.join(',')}]`).join(' ')}\n`);
}

export async function generateCommand(argv: string[]): Promise<void> {
  const { values: v }: { values: Values } = parse(argv, {
    ...MODEL_OPTIONS,
    ...TRANSPORT_OPTIONS,
    prompt: { type: 'string', multiple: true },
    ids: { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    'top-k': { type: 'string' },
    seed: { type: 'string' },
    stop: { type: 'string', multiple: true },
  });
  if (v.prompt && v.ids) throw new UsageError('give either --prompt or --ids, not both');
  const dir = typeof v.model === 'string' ? v.model : defaultModelDir();
  const promptIds = ids(v.ids);
  const prompts = promptIds ? [promptIds] : ((v.prompt as string[] | undefined) ?? ['def fibonacci(n):\n']);
  const gen = {
    maxTokens: positiveInt(v['max-tokens'], 'max-tokens', 64),
    temperature: num(v.temperature, 'temperature', 0),
    topP: num(v['top-p'], 'top-p', 1),
    topK: int(v['top-k'], 'top-k', 0),
    seed: int(v.seed, 'seed', 0),
    stop: v.stop as string[] | undefined,
  };
  // Values the engine would refuse only after every rank has loaded.
  if (gen.stop?.includes('')) throw new UsageError('--stop must not be empty');
  if (!promptIds && prompts.some((p) => p === '')) throw new UsageError('--prompt must not be empty');
  if (!promptIds) checkTextPrompt(dir, v.prompt ? 'a --prompt' : `the default prompt ${JSON.stringify(prompts[0])}`);
  if (gen.temperature! < 0) throw new UsageError('--temperature must be ≥ 0');
  if (gen.topP! <= 0 || gen.topP! > 1) throw new UsageError('--top-p must be in (0, 1]');
  await withModel(v, dir, async (llm) => {
    if (prompts.length === 1) {
      // One prompt: stream its text as it is generated.
      const p = prompts[0]!;
      if (!llm.tokenizer) {
        // No tokenizer.json: prompt ids, then each new id, one space apart (the text would run the last prompt id into the first new one).
        out((p as number[]).join(' '));
        for await (const ev of llm.stream(p, gen)) out(ev.tokenIds.map((t) => ` ${t}`).join(''));
        out('\n');
        return;
      }
      out(typeof p === 'string' ? p : llm.decode(p));
      for await (const ev of llm.stream(p, gen)) out(ev.text);
      out('\n');
      return;
    }
    const outs = await llm.generate(prompts, gen);
    for (const o of outs) out(`--- [${o.index}] ${JSON.stringify(prompts[o.index])}\n${o.text}\n`);
  });
}

export async function logitsCommand(argv: string[]): Promise<void> {
  const { values: v }: { values: Values } = parse(argv, { ...MODEL_OPTIONS, ...TRANSPORT_OPTIONS, ids: { type: 'string' }, prompt: { type: 'string' }, json: { type: 'boolean' } });
  if (typeof v.model !== 'string') throw new UsageError('logits needs --model DIR');
  const tokenIds = ids(v.ids);
  if (!tokenIds && typeof v.prompt !== 'string') throw new UsageError('logits needs --ids 1,2,3 (or --prompt TEXT)');
  if (!tokenIds) checkTextPrompt(v.model, 'a --prompt');
  await withModel(v, v.model, async (llm) => {
    const input = tokenIds ?? llm.encode(v.prompt as string);
    const rows = await llm.logits(input);
    if (v.json) {
      out(`{"logits": [${rows.map((r) => `[${Array.from(r).join(', ')}]`).join(', ')}]}\n`);
    } else {
      rows.forEach((r, i) => {
        let best = 0;
        for (let j = 1; j < r.length; j++) if (r[j]! > r[best]!) best = j;
        out(`position ${i} (token ${input[i]}): argmax ${best} logit ${r[best]!.toFixed(4)}\n`);
      });
    }
  });
}
