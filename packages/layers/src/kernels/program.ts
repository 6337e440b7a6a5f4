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

/** Run `program` on the active webgpu backend (inside a registered kernel's `kernelFunc`). */
export function runProgram(backend: unknown, program: WeftProgram, inputs: tf.TensorInfo[], uniforms: Uniform[]): tf.TensorInfo {
  return (backend as unknown as WebGPUBackendLike).runWebGPUProgram(program, inputs, 'float32', uniforms);
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

const registered = new Set<string>();

/** Register `kernelFunc` as `name` for webgpu once. */
export function registerOnce(name: string, kernelFunc: tf.KernelFunc): void {
  if (registered.has(name)) return;
  registered.add(name);
  if (tf.getKernel(name, 'webgpu')) return;
  tf.registerKernel({ kernelName: name, backendName: 'webgpu', kernelFunc });
}

/**
 * Whether weft's kernels run: the active backend is webgpu and
 * `WEFT_WEBGPU_KERNELS` is not `0` (set it to measure tfjs's stock kernels).
 */
export function webgpuKernelsActive(): boolean {
  return tf.getBackend() === 'webgpu' && (typeof process === 'undefined' || process.env.WEFT_WEBGPU_KERNELS !== '0');
}
