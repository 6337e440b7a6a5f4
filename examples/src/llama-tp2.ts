/**
 * Example: Llama generation with tensor parallelism over 2 worker threads,
 * streaming tokens as they come.
 *
 *   node examples/dist/llama-tp2.js [MODEL_DIR]
 */
import { LLM } from '@weft/engine';
import { defaultModelDir } from './cli/load-model.js';

const dir = process.argv[2] ?? defaultModelDir();
const llm = await LLM.load(dir, { tp: 2 });
const prompt = 'def forward(self, hidden_states):\n';
process.stdout.write(prompt);
for await (const ev of llm.stream(prompt, { maxTokens: 48 })) process.stdout.write(ev.text);
process.stdout.write('\n');
await llm.close();
