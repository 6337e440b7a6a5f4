/**
 * npm run bench:llama — prefill and decode tokens/s of Llama on the wasm backend
 * at several TP/PP layouts, beside the bandwidth bound measured in the same run
 * (decode reads every weight of a rank once per token). Prints a table, writes JSON.
 *
 * usage: node examples/dist/bench/llama.js [--shapes small,tinyllama] [--prompt 128] [--decode 16] [--out bench-results/llama.json]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { LLM } from '@weft/engine';
import { measureReadBandwidth } from './memory-bandwidth.js';
import { hasRandomLlama, paramCount, SHAPES, writeRandomLlama } from './random-checkpoint.js';

const { values: v } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'small,tinyllama' },
    prompt: { type: 'string', default: '128' },
    decode: { type: 'string', default: '16' },
    out: { type: 'string', default: 'bench-results/llama.json' },
  },
});
const promptLen = Number(v.prompt);
const decodeTokens = Number(v.decode);
const log = (m: string) => process.stderr.write(`[bench:llama] ${m}\n`);

const LAYOUTS: Record<string, { tp: number; pp: number }[]> = {
  small: [{ tp: 1, pp: 1 }, { tp: 2, pp: 1 }, { tp: 1, pp: 2 }],
  // fp32 TinyLlama (3.4 GB here) is over what one wasm rank holds for weights: tp ≥ 2.
  tinyllama: [{ tp: 2, pp: 1 }, { tp: 1, pp: 2 }],
};

log('measuring memory read bandwidth (1 and 2 threads)');
const bandwidthByThreads = [0, await measureReadBandwidth(1), await measureReadBandwidth(2)];
log(`read bandwidth ${bandwidthByThreads[1]!.toFixed(1)} GB/s (1 thread), ${bandwidthByThreads[2]!.toFixed(1)} GB/s (2 threads)`);

const rows: Record<string, unknown>[] = [];
for (const name of String(v.shapes).split(',')) {
  const shape = SHAPES[name];
  if (!shape) throw new Error(`unknown shape '${name}' (have ${Object.keys(SHAPES).join(', ')})`);
  const dir = join(tmpdir(), `weft-bench-${name}`);
  if (!hasRandomLlama(dir)) writeRandomLlama(dir, shape, log);
  const params = paramCount(shape);
  for (const { tp, pp } of LAYOUTS[name]!) {
    log(`${name} tp=${tp} pp=${pp}: loading`);
    const llm = await LLM.load(dir, { tp, pp, backend: 'wasm', timeoutMs: 600_000 });
    try {
      const prompt = Array.from({ length: promptLen }, (_, i) => 3 + ((i * 7919) % (shape.vocab - 3)));
      await llm.generate([prompt.slice(0, 8)], { maxTokens: 2, ignoreEos: true }); // warm-up
      let t0 = performance.now();
      await llm.generate([prompt], { maxTokens: 1, ignoreEos: true });
      const prefillS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      await llm.generate([prompt.slice(0, 8)], { maxTokens: decodeTokens + 1, ignoreEos: true });
      const decodeS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      await llm.generate([prompt.slice(0, 8)], { maxTokens: 1, ignoreEos: true });
      const shortPrefillS = (performance.now() - t0) / 1000;
      const decodeTokS = decodeTokens / Math.max(1e-9, decodeS - shortPrefillS);
      // Decode bound: every weight (fp32) is read once per token. The tp ranks of a stage read at once
      // (tp threads' aggregate bandwidth); pipeline stages run one after another at batch 1.
      const bytesPerRank = Math.max(...llm.weightBytesPerRank);
      const totalBytes = llm.weightBytesPerRank.reduce((a, b) => a + b, 0);
      const bw = bandwidthByThreads[Math.min(tp, 2)]!;
      const boundTokS = (bw * 1e9) / totalBytes;
      const row = {
        shape: name, params_m: +(params / 1e6).toFixed(1), tp, pp,
        prefill_tok_s: +(promptLen / prefillS).toFixed(1),
        decode_tok_s: +decodeTokS.toFixed(2),
        bound_tok_s: +boundTokS.toFixed(2),
        ratio_to_bound: +(decodeTokS / boundTokS).toFixed(2),
        weight_gb_per_rank: +(bytesPerRank / 1e9).toFixed(3),
        rss_gb: +(process.memoryUsage().rss / 1e9).toFixed(2),
      };
      rows.push(row);
      log(JSON.stringify(row));
    } finally {
      await llm.close();
    }
  }
}

const cols = ['shape', 'params_m', 'tp', 'pp', 'prefill_tok_s', 'decode_tok_s', 'bound_tok_s', 'ratio_to_bound', 'weight_gb_per_rank', 'rss_gb'];
console.log(`\nLlama on wasm, prompt ${promptLen} tokens, ${decodeTokens} decode tokens; read bandwidth ${bandwidthByThreads[1]!.toFixed(1)} GB/s (1 thread), ${bandwidthByThreads[2]!.toFixed(1)} GB/s (2 threads)\n`);
console.log(`| ${cols.join(' | ')} |\n| ${cols.map(() => '---').join(' | ')} |`);
for (const r of rows) console.log(`| ${cols.map((c) => String(r[c])).join(' | ')} |`);
mkdirSync(dirname(String(v.out)), { recursive: true });
writeFileSync(String(v.out), JSON.stringify({ date: new Date().toISOString(), bandwidth_gb_s: { threads1: bandwidthByThreads[1], threads2: bandwidthByThreads[2] }, promptLen, decodeTokens, rows }, null, 2));
log(`wrote ${v.out}`);
