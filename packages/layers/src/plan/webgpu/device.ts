/// <reference types="@webgpu/types" />
/**
 * A WebGPU device for weft's own kernels (the plan executor, the Llama step):
 * the adapter's own limits for buffer sizes, workgroup memory and storage
 * bindings, which the defaults (128 MiB bindings, 16 KiB workgroup memory)
 * would cap. `navigator.gpu` comes from `initBackend({ prefer: 'webgpu' })`.
 */
import { ConfigError } from '@weft/core';

/** GPUBufferUsage / GPUMapMode values (the globals exist only where Dawn was installed). */
export const BUF = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
export const MAP_READ_MODE = 0x1;

interface SubgroupInfo {
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
}
/** The adapter info of the devices `requestDevice` made (Dawn's GPUDevice may lack `adapterInfo`). */
const adapterInfos = new WeakMap<GPUDevice, SubgroupInfo>();

/** A device with the adapter's limits from `gpu` (default `navigator.gpu`; benches pass a Dawn instance made with other toggles). */
export async function requestDevice(who = 'webgpu', gpu: GPU | undefined = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu): Promise<GPUDevice> {
  if (!gpu) throw new ConfigError(`${who}: no navigator.gpu (call initBackend({ prefer: "webgpu" }) first, or pass a device)`);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new ConfigError(`${who}: no WebGPU adapter`);
  const L = adapter.limits;
  // Subgroup operations where the adapter has them (kernels use them where the executor knows the size:
  // `subgroupSize`); timestamp queries for the benches' step traces (no cost unless a pass writes one).
  const requiredFeatures = ['subgroups', 'timestamp-query'].filter((f) => adapter.features.has(f)) as unknown as GPUFeatureName[];
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxBufferSize: L.maxBufferSize,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: Math.min(1024, L.maxComputeInvocationsPerWorkgroup),
      maxComputeWorkgroupSizeX: Math.min(1024, L.maxComputeWorkgroupSizeX),
      maxStorageBuffersPerShaderStage: Math.min(10, L.maxStorageBuffersPerShaderStage),
    },
  });
  adapterInfos.set(device, (adapter as GPUAdapter & { info?: SubgroupInfo }).info ?? {});
  return device;
}

/**
 * The device's subgroup size when it runs subgroup operations with one fixed size (min = max, as NVIDIA's
 * 32), else null: kernels that reduce with `subgroupAdd` bake the size in.
 */
export function subgroupSize(device: GPUDevice): number | null {
  if (!device.features.has('subgroups')) return null;
  const info = adapterInfos.get(device) ?? (device as GPUDevice & { adapterInfo?: SubgroupInfo }).adapterInfo;
  const lo = info?.subgroupMinSize;
  return lo && lo === info?.subgroupMaxSize ? lo : null;
}

/** A workgroup count as (x, y) under the 65,535 per dimension limit; kernels index `wid.y · 65535 + wid.x`. */
export function split(n: number): [number, number] {
  return n <= 65535 ? [n, 1] : [65535, Math.ceil(n / 65535)];
}
