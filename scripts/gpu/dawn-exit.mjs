// The exit crash, reduced: N worker threads each take a Dawn device, run one dispatch, destroy the
// device and end naturally; then the process exits. Without the loader libraries pinned
// (packages/core/src/pin-gpu-libraries.ts) it segfaults in most runs on Mesa's
// OpenGL (a thread-specific-data destructor of the unloaded libEGL).
// usage: [PIN_MODULE=path/to/pin.mjs] node scripts/gpu/dawn-exit.mjs [threads=2] [opengl|vulkan]
import { Worker, isMainThread, workerData } from 'node:worker_threads';

if (isMainThread) {
  process.env.EGL_PLATFORM ??= 'surfaceless';
  if (process.env.PIN_MODULE) {
    const { pinGpuDriverLibraries } = await import(process.env.PIN_MODULE);
    pinGpuDriverLibraries();
  }
  const n = Number(process.argv[2] ?? 2);
  const backend = process.argv[3] ?? 'opengl';
  await Promise.all(
    Array.from({ length: n }, (_, i) => new Promise((res, rej) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { i, backend } });
      w.on('error', rej);
      w.on('exit', res);
    })),
  );
  console.log(`${n} Dawn threads ended`);
} else {
  const { create, globals } = await import(process.env.WEBGPU_MODULE ?? 'webgpu');
  Object.assign(globalThis, globals);
  const gpu = create([`backend=${workerData.backend}`]);
  const adapter = await gpu.requestAdapter(workerData.backend === 'opengl' ? { featureLevel: 'compatibility' } : {});
  if (!adapter) throw new Error(`no ${workerData.backend} adapter`);
  const d = await adapter.requestDevice();
  const b = d.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
  const code = '@group(0) @binding(0) var<storage, read_write> x : array<u32>; @compute @workgroup_size(1) fn main() { x[0] = 7u; }';
  const p = d.createComputePipeline({ layout: 'auto', compute: { module: d.createShaderModule({ code }), entryPoint: 'main' } });
  const e = d.createCommandEncoder();
  const pass = e.beginComputePass();
  pass.setPipeline(p);
  pass.setBindGroup(0, d.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: b } }] }));
  pass.dispatchWorkgroups(1);
  pass.end();
  d.queue.submit([e.finish()]);
  await d.queue.onSubmittedWorkDone();
  d.destroy();
}
