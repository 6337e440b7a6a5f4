/// <reference types="@webgpu/types" />
/**
 * Records kernels into compute passes: each kernel's variant compiled once
 * (pipelines shared by identical WGSL, bind groups per kernel and variant)
 * and Dawn's asynchronous validation errors collected per kernel, so a step
 * can throw them with the kernel's name; `scoped` does the same for uploads.
 * A step's dispatches (pipeline, bind group, workgroups) are resolved once
 * per step shape (`resolved`) and replayed: recording a step is then only
 * Dawn's calls, no per-dispatch lookups, shape arithmetic or garbage.
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

/** One dispatch as recorded: a kernel's variant at its shape, its workgroups. */
export interface Dispatch extends Variant {
  x: number;
  y: number;
}

const MAX_LISTS = 64;

export class KernelRecorder {
  private readonly variants = new Map<Kernel, Map<string, Variant>>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly errors: string[] = [];
  /** Resolved dispatch lists by the caller's key (a step shape), the latest `MAX_LISTS`; made again with the variants. */
  private readonly lists = new Map<string, Dispatch[][]>();

  constructor(
    private readonly device: GPUDevice,
    private readonly actBuffer: (a: PlanAct) => GPUBuffer,
  ) {}

  /** Bind groups name the step buffer and caches: made again after they change. */
  reset(): void {
    this.variants.clear();
    this.lists.clear();
  }

  /** One compute pass: `prefix` at their shapes, then `kernels` at the step's; returns the dispatches. `timestampWrites`: the pass's begin/end on the GPU clock (step traces). */
  encode(enc: GPUCommandEncoder, kernels: readonly Kernel[], stepShape: StepShape, si: GPUBuffer, layout: StepLayout, prefix: readonly ShapedKernel[] = [], timestampWrites?: GPUComputePassTimestampWrites): number {
    return this.record(enc, this.resolve([...prefix, ...kernels.map((kernel) => ({ kernel, shape: stepShape }))], si, layout), timestampWrites);
  }

  /**
   * The dispatches of each group of `groups()` (one command buffer's each), resolved the first time `key` is
   * asked for and kept until `reset`: the caller's key must name everything the groups' variants and
   * workgroups depend on (the step's shape). null: resolved now, not kept.
   */
  resolved(key: string | null, groups: () => readonly (readonly ShapedKernel[])[], si: GPUBuffer, layout: StepLayout): readonly Dispatch[][] {
    if (key === null) return groups().map((g) => this.resolve(g, si, layout));
    let l = this.lists.get(key);
    if (!l) {
      // Serving meets many shapes (prefill chunks, batch sizes): keep the latest.
      if (this.lists.size >= MAX_LISTS) this.lists.delete(this.lists.keys().next().value!);
      this.lists.set(key, (l = groups().map((g) => this.resolve(g, si, layout))));
    }
    return l;
  }

  /** One compute pass of resolved dispatches; returns their count. */
  record(enc: GPUCommandEncoder, list: readonly Dispatch[], timestampWrites?: GPUComputePassTimestampWrites): number {
    const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : undefined);
    let last: GPUComputePipeline | null = null;
    for (const d of list) {
      if (d.pipeline !== last) pass.setPipeline((last = d.pipeline));
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.x, d.y);
    }
    pass.end();
    return list.length;
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
    this.lists.clear();
  }

  /** Each kernel's variant at its shape, compiled where new; kernels with nothing to do at their shape left out. */
  private resolve(items: readonly ShapedKernel[], si: GPUBuffer, layout: StepLayout): Dispatch[] {
    const out: Dispatch[] = [];
    for (const { kernel: k, shape } of items) {
      const key = k.variant(shape);
      const wg = k.workgroups(shape, key);
      if (!wg) continue;
      const v = this.variant(k, key, si, layout);
      out.push({ pipeline: v.pipeline, bindGroup: v.bindGroup, x: wg[0], y: wg[1] });
    }
    return out;
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
