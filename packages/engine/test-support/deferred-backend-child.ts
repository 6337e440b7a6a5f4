/**
 * Child process of rank-backend.test.ts (a fresh process: whether libtensorflow is mapped says what this load
 * did): llama-tiny int4 on `backend: 'tensorflow'`; prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { LLM } from '../src/index.js';

const tfMapped = () => /libtensorflow/.test(readFileSync('/proc/self/maps', 'utf8'));
const llm = await LLM.load(process.argv[2]!, { backend: 'tensorflow', quantization: 'int4' });
try {
  const prompt = [1, 5, 9, 200, 33];
  const [o] = await llm.generate([prompt], { maxTokens: 6, temperature: 0, ignoreEos: true, returnLogits: true });
  const afterGenerate = tfMapped();
  // A full forward is a tfjs step: the deferred backend loads here.
  const full = await llm.logits([...prompt, ...o!.tokenIds.slice(0, -1)]);
  let maxDiff = 0;
  o!.logits!.forEach((row, i) => row.forEach((x, j) => (maxDiff = Math.max(maxDiff, Math.abs(x - full[prompt.length - 1 + i]![j]!)))));
  const [again] = await llm.generate([prompt], { maxTokens: 6, temperature: 0, ignoreEos: true });
  console.log(JSON.stringify({ backend: llm.backend, stepPath: llm.stepPath, afterGenerate, afterLogits: tfMapped(), maxDiff, same: again!.tokenIds.join() === o!.tokenIds.join() }));
} finally {
  await llm.close();
}
