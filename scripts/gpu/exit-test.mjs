// The exit test: weft with two webgpu ranks (worker threads) computes logits, closes, and the
// process ends by itself (no process.exit). WEFT_PIN=1 pins the graphics loader libraries first
// (pinGpuDriverLibraries, the fix); the exit status is the verdict (139 = the crash).
// usage: [WEFT_PIN=1] node scripts/gpu/exit-test.mjs [model=fixtures/llama-tiny] [tp=2]
if (process.env.WEFT_PIN === '1') {
  const { pinGpuDriverLibraries } = await import('@weft/layers');
  pinGpuDriverLibraries();
}
// LLM lives in @weft/engine (earlier in @weft/llama).
const LLM = (await import('@weft/engine').catch(() => ({}))).LLM ?? (await import('@weft/llama')).LLM;
const llm = await LLM.load(process.argv[2] ?? 'fixtures/llama-tiny', { tp: Number(process.argv[3] ?? 2), backend: 'webgpu' });
const rows = await llm.logits([1, 2, 3]);
console.log(`logits ${rows.length}×${rows[0].length}`);
await llm.close();
