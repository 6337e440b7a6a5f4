/**
 * weft's own WebGPU kernels, registered in tfjs's kernel registry for the
 * `webgpu` backend and run through its `runWebGPUProgram`, so they take part
 * in tidy, disposal and profiling like any tfjs op.
 *
 * A program follows tfjs-backend-webgpu's conventions: `result` is binding 0,
 * the inputs follow in `variableNames` order, then a `uniforms` struct; a flat
 * `dispatchLayout` makes tfjs call the user code's `fn main(flatIndex : i32)`. tfjs builds pipelines with `layout: 'auto'`,
 * so every shader must read every input and `uniforms`.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The fields of tfjs-backend-webgpu's `WebGPUProgram` our kernels set. */
export interface WeftProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  variableComponents?: number[];
  outputComponent?: number;
  workgroupSize: [number, number, number];
  /** Extra uniform fields, WGSL struct syntax: `k : i32, eps : f32,`. */
  uniforms?: string;
  size?: boolean;
  getUserCode(): string;
}

/** One scalar per uniform field: tfjs aligns a multi-element entry as a vector, which shifts the fields after it. */
export interface Uniform {
  type: 'int32' | 'float32';
  data: number[];
}

interface WebGPUBackendLike {
  runWebGPUProgram(program: WeftProgram, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms?: Uniform[]): tf.TensorInfo;
}

/** The parts of tfjs-backend-webgpu 4.x's WebGPUBackend that the lean dispatch uses. */
interface BackendInternals extends WebGPUBackendLike {
  device: GPUDeviceLike;
  queue: { writeBuffer(buffer: unknown, offset: number, data: ArrayBuffer): void };
  bufferManager: { acquireBuffer(size: number, usage: number): unknown };
  uniformPendingDisposal: unknown[];
  commandQueueOwnedIds: WeakSet<object>;
  tensorMap: { get(dataId: object): { resource: unknown; dtype: tf.DataType } };
  activeTimers: unknown;
  commandEncoder: { beginComputePass(d: object): PassLike };
  computePassEncoder: PassLike | null;
  dispatchCountInPass: number;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  uploadToGPU(dataId: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}
interface PassLike {
  setPipeline(p: unknown): void;
  setBindGroup(i: number, g: unknown): void;
  dispatchWorkgroups(x: number, y: number, z: number): void;
}
interface GPUDeviceLike {
  limits: { maxComputeWorkgroupsPerDimension: number };
  createShaderModule(d: { code: string; label?: string }): unknown;
  createComputePipeline(d: object): { getBindGroupLayout(i: number): unknown };
  createBindGroup(d: object): unknown;
}

const UNIFORM_USAGE = 0x40 | 0x08; // GPUBufferUsage.UNIFORM | COPY_DST
const leanPipelines = new WeakMap<object, Map<string, { pipeline: unknown; layout: unknown }>>();

/** weft's WebGPU kernel switches (both on by default). */
export interface WebgpuKernelSettings {
  /** Run weft's kernels at all (off: tfjs's stock kernels, to measure them). */
  kernels: boolean;
  /** Skip tfjs's generic program path (off: `runWebGPUProgram`). */
  lean: boolean;
}

/** Set from the edge (a rank's entry, a benchmark, a test); read per dispatch, so no environment lookup there. */
let settings: WebgpuKernelSettings = { kernels: true, lean: true };

/** Change the switches for this thread (each rank thread has its own); returns the previous ones. */
export function configureWebgpuKernels(s: Partial<WebgpuKernelSettings>): WebgpuKernelSettings {
  const before = settings;
  settings = { ...settings, ...s };
  return before;
}

/** The switches an environment asks for: `WEFT_WEBGPU_KERNELS=0`, `WEFT_WEBGPU_LEAN=0` turn them off (for the edge to read once). */
export function webgpuKernelSettingsFromEnv(env: Readonly<Record<string, string | undefined>>): WebgpuKernelSettings {
  return { kernels: env.WEFT_WEBGPU_KERNELS !== '0', lean: env.WEFT_WEBGPU_LEAN !== '0' };
}

/**
 * Run `program` on the active webgpu backend (inside a registered kernel's
 * `kernelFunc`). The lean path records the dispatch into tfjs's own command
 * encoder and buffer pool, as `runWebGPUProgram` does, but with a cached
 * pipeline and bind-group layout, no shape uniforms and no per-call shader
 * key: at decode, dispatch cost on the CPU is what bounds a step. It falls
 * back to `runWebGPUProgram` while tfjs profiles (timer queries) or when the
 * backend lacks what it needs.
 */
export function runProgram(backend: unknown, program: WeftProgram, inputs: tf.TensorInfo[], uniforms: Uniform[]): tf.TensorInfo {
  const b = backend as BackendInternals;
  if (!settings.lean || b.activeTimers != null || typeof b.submitQueue !== 'function' || !b.bufferManager) {
    return b.runWebGPUProgram(program, inputs, 'float32', uniforms);
  }
  const output = b.makeTensorInfo(program.outputShape, 'float32');
  b.uploadToGPU(output.dataId);
  for (const x of inputs) b.uploadToGPU(x.dataId);
  const dtypes = inputs.map((x) => b.tensorMap.get(x.dataId).dtype);
  let cache = leanPipelines.get(b);
  if (!cache) leanPipelines.set(b, (cache = new Map()));
  const key = `${program.shaderKey}|${dtypes.join(',')}`;
  let entry = cache.get(key);
  if (!entry) {
    const module = b.device.createShaderModule({ code: leanShader(program, dtypes), label: program.shaderKey });
    const pipeline = b.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: '_start' }, label: program.shaderKey });
    entry = { pipeline, layout: pipeline.getBindGroupLayout(0) };
    cache.set(key, entry);
  }
  const size = Math.max(16, Math.ceil((uniforms.length * 4) / 16) * 16);
  const data = new ArrayBuffer(size);
  const i32 = new Int32Array(data);
  const f32 = new Float32Array(data);
  uniforms.forEach((u, i) => {
    if (u.type === 'int32') i32[i] = u.data[0]!;
    else f32[i] = u.data[0]!;
  });
  const ubuf = b.bufferManager.acquireBuffer(size, UNIFORM_USAGE);
  b.queue.writeBuffer(ubuf, 0, data);
  b.uniformPendingDisposal.push(ubuf);
  const buffers = [output, ...inputs].map((t) => ({ buffer: b.tensorMap.get(t.dataId).resource }));
  const bindGroup = b.device.createBindGroup({
    layout: entry.layout,
    entries: [...buffers, { buffer: ubuf }].map((resource, binding) => ({ binding, resource })),
  });
  for (const x of inputs) b.commandQueueOwnedIds.add(x.dataId);
  b.commandQueueOwnedIds.add(output.dataId);
  b.ensureCommandEncoderReady();
  b.computePassEncoder ??= b.commandEncoder.beginComputePass({});
  const pass = b.computePassEncoder;
  pass.setPipeline(entry.pipeline);
  pass.setBindGroup(0, bindGroup);
  const [x, y, z] = fitDispatch(program.dispatch, b.device.limits.maxComputeWorkgroupsPerDimension);
  pass.dispatchWorkgroups(x, y, z);
  b.dispatchCountInPass++;
  if (b.dispatchCountInPass >= (tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number)) {
    b.endComputePassEncoder();
    b.submitQueue();
  }
  return output;
}

/** A 1-D launch past the per-dimension limit becomes 2-D or 3-D (kernels rebuild the index with WORKGROUP_INDEX and mask). */
function fitDispatch(d: [number, number, number], max: number): [number, number, number] {
  if (d[0] <= max) return d;
  const sq = Math.ceil(Math.sqrt(d[0]));
  if (sq <= max) return [sq, sq, 1];
  const cb = Math.ceil(Math.cbrt(d[0]));
  return [cb, cb, cb];
}

const wgslType = (dtype: tf.DataType, components: number) => {
  const t = dtype === 'int32' || dtype === 'bool' ? 'i32' : 'f32';
  return components === 1 ? t : `vec${components}<${t}>`;
};

/** A whole shader around the program's user code: its own bindings and uniforms, the same builtins tfjs's header provides. */
function leanShader(p: WeftProgram, dtypes: tf.DataType[]): string {
  const inputs = p.variableNames
    .map((name, i) => `@group(0) @binding(${i + 1}) var<storage, read> ${name} : array<${wgslType(dtypes[i]!, p.variableComponents?.[i] ?? 1)}>;`)
    .join('\n');
  return `
struct Uniforms { ${p.uniforms ?? ''} };
@group(0) @binding(0) var<storage, read_write> result : array<${wgslType('float32', p.outputComponent ?? 1)}>;
${inputs}
@group(0) @binding(${p.variableNames.length + 1}) var<uniform> uniforms : Uniforms;
var<private> localIndex : u32;
var<private> workgroupId : vec3<u32>;
var<private> numWorkgroups : vec3<u32>;
${p.getUserCode()}
@compute @workgroup_size(${p.workgroupSize.join(', ')})
fn _start(@builtin(local_invocation_index) li : u32, @builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  localIndex = li;
  workgroupId = wid;
  numWorkgroups = nwg;
  main(0);
}`;
}

/**
 * WGSL: this workgroup's index in a 1-D launch of `count` workgroups. tfjs
 * reshapes a launch past 65,535 workgroups into 2-D/3-D, so the index is
 * rebuilt from all three and may exceed `count` (callers mask with it).
 */
export const WORKGROUP_INDEX = 'i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x)';

/** WGSL lines reducing `buf[0..n)` (n a power of two ≤ workgroup size) into `buf[0]` with `op` ('+' or 'max'); `lid` is the local index. */
export function treeReduce(buf: string, n: number, op: '+' | 'max'): string {
  const lines: string[] = [];
  for (let s = n / 2; s >= 1; s /= 2) {
    const combine = op === '+' ? `${buf}[lid] + ${buf}[lid + ${s}]` : `max(${buf}[lid], ${buf}[lid + ${s}])`;
    lines.push(`if (lid < ${s}) { ${buf}[lid] = ${combine}; }`, 'workgroupBarrier();');
  }
  return lines.join('\n    ');
}

/** Register `kernelFunc` as `name` for webgpu once. */
export function registerOnce(name: string, kernelFunc: tf.KernelFunc): void {
  if (tf.getKernel(name, 'webgpu')) return;
  tf.registerKernel({ kernelName: name, backendName: 'webgpu', kernelFunc });
}

/**
 * Whether weft's kernels run: the active backend is webgpu and they are not
 * switched off (`configureWebgpuKernels({ kernels: false })`, or
 * `WEFT_WEBGPU_KERNELS=0` read by a rank's entry, to measure tfjs's stock kernels).
 */
export function webgpuKernelsActive(): boolean {
  return settings.kernels && tf.getBackend() === 'webgpu';
}
