/**
 * What Dawn's adapter offers weft's kernels (issue 20's probe): features, subgroup sizes, the limits the
 * executor asks for, the subgroup-matrix configurations where Dawn lists them; where 'subgroups' is
 * offered a shader using subgroupAdd runs and reports its subgroup size, and where
 * 'chromium-experimental-subgroup-matrix' is offered a loop of subgroup-matrix multiply-accumulates runs on
 * every subgroup of the GPU (its result checked against the CPU, its rate in TFLOP/s).
 */
/// <reference types="@webgpu/types" />

const BUF = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, STORAGE: 0x80 } as const;

async function readBack(dev: GPUDevice, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const rb = dev.createBuffer({ size: bytes, usage: BUF.MAP_READ | BUF.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, rb, 0, bytes);
  dev.queue.submit([enc.finish()]);
  await rb.mapAsync(0x1);
  const out = rb.getMappedRange().slice(0);
  rb.destroy();
  return out;
}

/** Compile `code`, run it over `groups` workgroups with one read-write buffer of `words` u32/f32; the buffer after, or the error. */
async function runShader(dev: GPUDevice, code: string, init: Float32Array, groups: number, reps = 1): Promise<{ out: Float32Array; ms: number } | { error: string }> {
  dev.pushErrorScope('validation');
  const module = dev.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errs = info.messages.filter((m) => m.type === 'error').map((m) => m.message);
  if (errs.length) {
    await dev.popErrorScope();
    return { error: errs.join('; ') };
  }
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const buf = dev.createBuffer({ size: init.byteLength, usage: BUF.STORAGE | BUF.COPY_SRC | BUF.COPY_DST });
  dev.queue.writeBuffer(buf, 0, init);
  const bg = dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
  const e = await dev.popErrorScope();
  if (e) return { error: e.message };
  const run = async () => {
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(groups);
    pass.end();
    const t = performance.now();
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };
  await run();
  const ms = await run();
  const out = new Float32Array(await readBack(dev, buf, init.byteLength));
  buf.destroy();
  return { out, ms };
}

const SUBGROUPS = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> o : array<f32>;
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) lid : u32, @builtin(subgroup_size) sg : u32) {
  let s = subgroupAdd(f32(lid));
  if (lid == 0u) { o[0] = f32(sg); o[1] = s; }
}`;

interface MatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/** 8-bit matrices (the H200's only ones, behind allow_unsafe_apis) live in arrays of 32-bit words, 4 components a word. */
const packed8 = (t: string) => t === 'i8' || t === 'u8';

/**
 * C = A·B on one subgroup (A [M,K] row-major at 0, B [K,N] at M·K, C [M,N] at M·K + K·N), then a timing loop.
 * Offsets and strides count components, also for 8-bit ones packed 4 to a word (as Tint's tests load them).
 */
function matrixShader(c: MatrixConfig, iters: number): string {
  const t = c.componentType;
  const rt = c.resultComponentType;
  const f16 = t === 'f16' || rt === 'f16';
  const L = `subgroup_matrix_left<${t}, ${c.K}, ${c.M}>`;
  const R = `subgroup_matrix_right<${t}, ${c.N}, ${c.K}>`;
  const C = `subgroup_matrix_result<${rt}, ${c.N}, ${c.M}>`;
  const p = packed8(t) ? 4 : 1;
  const word = t === 'i8' ? 'i32' : t === 'u8' ? 'u32' : t;
  // dst's elements from o's values at base: one each, or 4 bytes a word
  const fill = (dst: string, base: number, n: number) =>
    p === 1
      ? `for (var i = lid; i < ${n}u; i += 128u) { ${dst}[i] = ${t}(o[${base}u + i]); }`
      : `for (var i = lid; i < ${n / 4}u; i += 128u) { var w = 0u; for (var j = 0u; j < 4u; j++) { w |= (bitcast<u32>(i32(o[${base}u + 4u * i + j])) & 0xffu) << (8u * j); } ${dst}[i] = ${word === 'i32' ? 'bitcast<i32>(w)' : 'w'}; }`;
  return `${f16 ? 'enable f16;\n' : ''}enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> o : array<f32>;
var<workgroup> a : array<${word}, ${(c.M * c.K) / p}>;
var<workgroup> b : array<${word}, ${(c.K * c.N) / p}>;
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
  // Throughput: independent accumulators, ${iters} multiply-accumulates each.
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

export async function probeAdapter(log: (m: string) => void): Promise<Record<string, unknown>> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator!.gpu!;
  const adapter = (await gpu.requestAdapter({ powerPreference: 'high-performance' }))!;
  const info = (adapter as unknown as { info: { vendor: string; architecture: string; description: string } }).info as { vendor: string; architecture: string; description: string } & { subgroupMinSize?: number; subgroupMaxSize?: number; subgroupMatrixConfigs?: MatrixConfig[] };
  const features = [...adapter.features].sort();
  const L = adapter.limits;
  const out: Record<string, unknown> = {
    vendor: info.vendor, architecture: info.architecture, description: info.description,
    subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize,
    features,
    limits: { maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize, maxStorageBufferBindingSize: L.maxStorageBufferBindingSize, maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup },
    subgroupMatrixConfigs: info.subgroupMatrixConfigs ? [...info.subgroupMatrixConfigs].map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })) : null,
  };
  const want = ['subgroups', 'shader-f16', 'chromium-experimental-subgroup-matrix'].filter((f) => adapter.features.has(f));
  let dev: GPUDevice;
  try {
    dev = await adapter.requestDevice({ requiredFeatures: want as GPUFeatureName[], requiredLimits: { maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize } });
  } catch (e) {
    out.deviceError = (e as Error).message;
    return out;
  }
  try {
    if (adapter.features.has('subgroups')) {
      const r = await runShader(dev, SUBGROUPS, new Float32Array(4), 1);
      out.subgroups = 'error' in r ? { error: r.error } : { subgroupSize: r.out[0], subgroupAddOf0to127: r.out[1] };
    }
    const configs = (out.subgroupMatrixConfigs as MatrixConfig[] | null) ?? [];
    if (adapter.features.has('chromium-experimental-subgroup-matrix')) {
      const tried: unknown[] = [];
      for (const c of configs.slice(0, 6)) {
        const iters = 4096;
        const groups = 132 * 16;
        const n = c.M * c.K + c.K * c.N + c.M * c.N + 4;
        const init = new Float32Array(n);
        // small values exact in every component type: eighths for floats, integers (non-negative for u8) for 8-bit
        for (let i = 0; i < c.M * c.K + c.K * c.N; i++) init[i] = packed8(c.componentType) ? ((i * 7) % 11) - (c.componentType === 'u8' ? 0 : 5) : ((i * 7) % 11) / 8 - 0.5;
        const r = await runShader(dev, matrixShader(c, iters), init, groups);
        if ('error' in r) {
          tried.push({ ...c, error: r.error.slice(0, 400) });
          continue;
        }
        let worst = 0;
        for (let i = 0; i < c.M; i++)
          for (let j = 0; j < c.N; j++) {
            let s = 0;
            for (let k = 0; k < c.K; k++) s += init[i * c.K + k]! * init[c.M * c.K + k * c.N + j]!;
            worst = Math.max(worst, Math.abs(r.out[c.M * c.K + c.K * c.N + i * c.N + j]! - s));
          }
        const flops = 2 * c.M * c.N * c.K * 4 * iters * 4 * groups;
        tried.push({ ...c, maxAbsError: worst, tflops: +(flops / (r.ms / 1000) / 1e12).toFixed(1), ms: +r.ms.toFixed(2) });
      }
      out.subgroupMatrix = tried;
    }
  } catch (e) {
    out.probeError = (e as Error).message;
    log(`probe: ${(e as Error).message}`);
  } finally {
    dev.destroy();
  }
  return out;
}
