// Can Dawn (npm `webgpu`) give an adapter and a device in the main thread and
// in several worker threads of one process at once (one GPU shared by ranks)?
// usage: node scripts/gpu/worker-probe.mjs [workers=2]
import { Worker, isMainThread, threadId } from 'node:worker_threads';

async function probe() {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const gpu = create([]);
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { threadId, adapter: null };
  const device = await adapter.requestDevice();
  const buf = device.createBuffer({ size: 16, usage: globals.GPUBufferUsage.MAP_READ | globals.GPUBufferUsage.COPY_DST });
  await buf.mapAsync(globals.GPUMapMode.READ);
  buf.unmap();
  const info = adapter.info ?? {};
  device.destroy();
  return { threadId, adapter: `${info.vendor} ${info.architecture} ${info.description}`.trim(), maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize };
}

if (isMainThread) {
  const n = Number(process.argv[2] ?? 2);
  console.log(JSON.stringify({ main: await probe() }));
  const results = await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve) => {
      const w = new Worker(new URL(import.meta.url));
      w.once('message', resolve);
      w.once('error', (e) => resolve({ error: e.message }));
    })),
  );
  console.log(JSON.stringify({ workers: results }));
  process.exit(results.every((r) => r.adapter) ? 0 : 1);
} else {
  const { parentPort } = await import('node:worker_threads');
  parentPort.postMessage(await probe().catch((e) => ({ threadId, error: e.message })));
}
