/// <reference types="@webgpu/types" />
/**
 * Records kernels into compute passes: each kernel's variant compiled once
 * (pipelines shared by identical WGSL, bind groups per kernel and variant)
 * and Dawn's asynchronous validation errors collected per kernel, so a step
 * can throw them with the kernel's name; `scoped` does the same for uploads.
 */
import { WeftError } from '@weft/core';
import type { PlanAct } from '../ops.js';
import type { Kernel, StepShape } from './plan-kernels.js';
import { Binder, type StepLayout } from './wgsl-common.js';

/** One dispatch at its own shape (a moe expert's row count), ahead of a segment's kernels. */
export interface ShapedKernel {
  kernel: Kernel;
  shape: StepShape;
}

interface Variant {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
}

export class KernelRecorder {
  private readonly variants = new Map<Kernel, Map<string, Variant>>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly errors: string[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly actBuffer: (a: PlanAct) => GPUBuffer,
  ) {}

  /** Bind groups name the step buffer and caches: made again after they change. */
  reset(): void {
    this.variants.clear();
  }

  /** One compute pass: `prefix` at their shapes, then `kernels` at the step's; returns the dispatches. `timestampWrites`: the pass's begin/end on the GPU clock (step traces). */
  encode(enc: GPUCommandEncoder, kernels: readonly Kernel[], stepShape: StepShape, si: GPUBuffer, layout: StepLayout, prefix: readonly ShapedKernel[] = [], timestampWrites?: GPUComputePassTimestampWrites): number {
    const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : undefined);
    let n = 0;
    let last: GPUComputePipeline | null = null;
    for (const { kernel: k, shape } of [...prefix, ...kernels.map((kernel) => ({ kernel, shape: stepShape }))]) {
      const key = k.variant(shape);
      const wg = k.workgroups(shape, key);
      if (!wg) continue;
      const v = this.variant(k, key, si, layout);
      if (v.pipeline !== last) pass.setPipeline((last = v.pipeline));
      pass.setBindGroup(0, v.bindGroup);
      pass.dispatchWorkgroups(wg[0], wg[1]);
      n++;
    }
    pass.end();
    return n;
  }

  /** Throw what the device reported about any kernel so far. */
  throwErrors(): void {
    if (!this.errors.length) return;
    const all = this.errors.splice(0);
    throw new WeftError(`webgpu plan: the device reported ${all.length} error(s): ${all.join('; ')}`);
  }

  /** Run `f` inside validation and out-of-memory error scopes; throw what the device reports, naming `what`. */
  async scoped<R>(what: string, f: () => R): Promise<R> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let r: R;
    try {
      r = f();
    } finally {
      const [validation, oom] = [await this.device.popErrorScope(), await this.device.popErrorScope()];
      const e = validation ?? oom;
      if (e) throw new WeftError(`webgpu plan: ${what}: ${oom ? 'out of device memory' : 'device error'}: ${e.message}`);
    }
    return r;
  }

  clear(): void {
    this.variants.clear();
    this.pipelines.clear();
  }

  private variant(k: Kernel, key: string, si: GPUBuffer, layout: StepLayout): Variant {
    let m = this.variants.get(k);
    if (!m) this.variants.set(k, (m = new Map()));
    let v = m.get(key);
    if (!v) {
      const b = new Binder(this.actBuffer, si, layout);
      const code = k.code(b, key);
      let pipeline = this.pipelines.get(code);
      // Dawn reports a shader or binding error asynchronously: the scope names the kernel, the step throws it.
      this.device.pushErrorScope('validation');
      if (!pipeline) {
        const module = this.device.createShaderModule({ code, label: k.tag });
        pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: k.tag });
        this.pipelines.set(code, pipeline);
      }
      const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: b.buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
      void this.device.popErrorScope().then((e) => {
        if (e) this.errors.push(`kernel ${k.tag} (${key}): ${e.message}`);
      });
      m.set(key, (v = { pipeline, bindGroup }));
    }
    return v;
  }
}
