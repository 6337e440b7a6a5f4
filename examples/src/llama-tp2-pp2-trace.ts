/**
 * Example: Llama over 4 ranks (tp 2 × pp 2) with a per-rank timeline: open
 * the trace file in https://ui.perfetto.dev to see each layer's compute and
 * each collective, and how the pipeline stages wait on each other.
 *
 *   node examples/dist/llama-tp2-pp2-trace.js [MODEL_DIR] [TRACE_FILE]
 */
import { writeFileSync } from 'node:fs';
import { LLM } from '@weft/engine';
import { defaultModelDir } from './cli/load-model.js';

const dir = process.argv[2] ?? defaultModelDir();
const file = process.argv[3] ?? 'trace-tp2-pp2.json';
const llm = await LLM.load(dir, { tp: 2, pp: 2, trace: true });
const [out] = await llm.generate(['import torch\n'], { maxTokens: 24 });
console.log(out!.text);
writeFileSync(file, JSON.stringify(llm.trace()));
console.log(`${llm.trace().traceEvents.length} trace events from ${llm.worldSize} ranks written to ${file}`);
await llm.close();
