#!/usr/bin/env node
/**
 * What Dawn (npm `webgpu` 0.6.2) offers with its unsafe (experimental) APIs allowed: issue 20's probe of the
 * subgroup-matrix feature (cooperative matrices: tensor cores from WGSL) and shader-f16 ran with the default
 * instance, where Dawn hides experimental features. Prints the adapter's features and subgroup-matrix
 * configurations with and without `allow_unsafe_apis`; where a configuration is offered, multiplies one
 * subgroup matrix on the device, checks it against the CPU and times a loop of independent
 * multiply-accumulates (TFLOP/s). Writes the JSON to the path given (default stdout only).
 *
 * usage: node scripts/dawn-unsafe-probe.mjs [out.json] [--backend vulkan|opengl]
 */
import { writeFileSync } from 'node:fs';
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const args = process.argv.slice(2);
const backend = args.includes('--backend') ? args[args.indexOf('--backend') + 1] : 'vulkan';
const outPath = args.find((a) => a.endsWith('.json'));

async function adapterOf(toggles) {
  const gpu = create([`backend=${backend}`, ...toggles]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', ...(backend === 'opengl' ? { featureLevel: 'compatibility' } : {}) });
  return { gpu, adapter };
}

function describe(adapter) {
  if (!adapter) return null;
  const info = adapter.info ?? {};
  return {
    description: info.description,
    features: [...adapter.features].sort(),
    subgroupMatrixConfigs: (info.subgroupMatrixConfigs ?? []).map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })),
  };
}

/** 8-bit matrices live in arrays of 32-bit words, 4 components a word (offsets and strides count components). */
const packed = (t) => t === 'i8' || t === 'u8';
const store = (t) => (t === 'i8' ? 'i32' : t === 'u8' ? 'u32' : t);

function shader(c, iters) {
  const t = c.componentType, rt = c.resultComponentType;
  const f16 = t === 'f16' || rt === 'f16';
  const L = `subgroup_matrix_left<${t}, ${c.K}, ${c.M}>`, R = `subgroup_matrix_right<${t}, ${c.N}, ${c.K}>`, C = `subgroup_matrix_result<${rt}, ${c.N}, ${c.M}>`;
  const st = store(t), p = packed(t) ? 4 : 1;
  // Fill a word from 4 (or 1) of o's values.
  const fill = (dst, base, n) =>
    p === 1
      ? `for (var i = lid; i < ${n}u; i += 128u) { ${dst}[i] = ${t}(o[${base}u + i]); }`
      : `for (var i = lid; i < ${n / 4}u; i += 128u) { var w = 0u; for (var j = 0u; j < 4u; j++) { w |= (bitcast<u32>(i32(o[${base}u + 4u * i + j])) & 0xffu) << (8u * j); } ${dst}[i] = ${st === 'i32' ? 'bitcast<i32>(w)' : 'w'}; }`;
  return `${f16 ? 'enable f16;\n' : ''}enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> o : array<f32>;
var<workgroup> a : array<${st}, ${(c.M * c.K) / p}>;
var<workgroup> b : array<${st}, ${(c.K * c.N) / p}>;
var<workgroup> r : array<${rt}, ${c.M * c.N * 4}>;
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) lid : u32, @builtin(workgroup_id) wid : vec3<u32>) {
  ${fill('a', 0, c.M * c.K)}
  ${fill('b', c.M * c.K, c.K * c.N)}
  workgroupBarrier();
  let l = subgroupMatrixLoad<${L}>(&a, 0u, false, ${c.K}u);
  let rr = subgroupMatrixLoad<${R}>(&b, 0u, false, ${c.N}u);
  var acc0 = ${C}();
  acc0 = subgroupMatrixMultiplyAccumulate(l, rr, acc0);
  let sg = lid / 32u;
  subgroupMatrixStore(&r, sg * ${c.M * c.N}u, acc0, false, ${c.N}u);
  workgroupBarrier();
  if (wid.x == 0u) { for (var i = lid; i < ${c.M * c.N}u; i += 128u) { o[${c.M * c.K + c.K * c.N}u + i] = f32(r[i]); } }
  var acc1 = ${C}(); var acc2 = ${C}(); var acc3 = ${C}();
  for (var it = 0u; it < ${iters}u; it++) {
    acc0 = subgroupMatrixMultiplyAccumulate(l, rr, acc0);
    acc1 = subgroupMatrixMultiplyAccumulate(l, rr, acc1);
    acc2 = subgroupMatrixMultiplyAccumulate(l, rr, acc2);
    acc3 = subgroupMatrixMultiplyAccumulate(l, rr, acc3);
  }
  subgroupMatrixStore(&r, sg * ${c.M * c.N}u, acc0 + acc1 + acc2 + acc3, false, ${c.N}u);
  workgroupBarrier();
  if (wid.x == 1u && lid == 0u) { o[${c.M * c.K + c.K * c.N + c.M * c.N}u] = f32(r[0]); }
}`;
}

async function tryConfig(device, c) {
  const { M, N, K } = c;
  const n = M * K + K * N + M * N + 1;
  const init = new Float32Array(n);
  for (let i = 0; i < M * K + K * N; i++) init[i] = ((i * 7) % 11) - (c.componentType === 'u8' ? 0 : 5); // small integers: exact in every type
  const buf = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const rb = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const iters = 4096, groups = 132 * 16;
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: shader(c, iters) });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const err = await device.popErrorScope();
  if (err) return { error: err.message.split('\n').slice(0, 4).join(' ') };
  const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
  const run = async () => {
    device.queue.writeBuffer(buf, 0, init);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(groups);
    pass.end();
    enc.copyBufferToBuffer(buf, 0, rb, 0, n * 4);
    const t = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    const ms = performance.now() - t;
    await rb.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(rb.getMappedRange().slice(0));
    rb.unmap();
    return { ms, out };
  };
  await run();
  const { ms, out } = await run();
  let maxErr = 0;
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += init[i * K + k] * init[M * K + k * N + j];
      maxErr = Math.max(maxErr, Math.abs(out[M * K + K * N + i * N + j] - s));
    }
  // 4 subgroups a workgroup, 4 chains of `iters` M×N×K multiply-accumulates each
  const flops = 2 * M * N * K * iters * 4 * 4 * groups;
  return { maxErr, ms: +ms.toFixed(3), tflops: +(flops / (ms / 1000) / 1e12).toFixed(1) };
}

const result = { backend, date: new Date().toISOString() };
result.default = describe((await adapterOf([])).adapter);
const { adapter } = await adapterOf(['enable-dawn-features=allow_unsafe_apis']);
result.unsafe = describe(adapter);
if (adapter) {
  const want = ['chromium-experimental-subgroup-matrix', 'shader-f16', 'subgroups'].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures: want });
  result.deviceFeatures = [...device.features].sort();
  result.runs = [];
  if (want.includes('chromium-experimental-subgroup-matrix'))
    for (const c of result.unsafe.subgroupMatrixConfigs) result.runs.push({ ...c, ...(await tryConfig(device, c).catch((e) => ({ error: String(e.message ?? e) }))) });
  device.destroy();
}
const text = JSON.stringify(result, null, 1);
console.log(text);
if (outPath) writeFileSync(outPath, text);
setTimeout(() => process.exit(0), 100);
