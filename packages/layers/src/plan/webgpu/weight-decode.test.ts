/// <reference types="@webgpu/types" />
/**
 * The WGSL weight decoders (`WEIGHT_FNS`) on every byte value in every lane: `i8x4` gives each byte as its
 * signed value, `nib4` each low nibble minus 8 (of the word and of the word shifted by 4, as the kernels call
 * it), bit for bit the floats the int → float conversions they replace gave (the exponent trick must be exact).
 */
import { describe, expect, it } from 'vitest';
import { useTestDevice } from './test-device.js';
import { WEIGHT_FNS } from './wgsl-common.js';

const gpu = useTestDevice();

/** Runs `i8x4`, `nib4` and `nib4(u >> 4)` of each word on the device: 12 floats a word. */
async function decode(words: Uint32Array): Promise<Float32Array> {
  const dev = gpu();
  const code = `${WEIGHT_FNS}
@group(0) @binding(0) var<storage, read> inp : array<u32>;
@group(0) @binding(1) var<storage, read_write> res : array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g : vec3<u32>) {
  let i = g.x;
  if (i >= arrayLength(&inp)) { return; }
  res[3u * i] = i8x4(inp[i]);
  res[3u * i + 1u] = nib4(inp[i]);
  res[3u * i + 2u] = nib4(inp[i] >> 4u);
}`;
  const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code }), entryPoint: 'main' } });
  const src = dev.createBuffer({ size: words.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const dst = dev.createBuffer({ size: words.length * 48, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = dev.createBuffer({ size: words.length * 48, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  dev.queue.writeBuffer(src, 0, words);
  const enc = dev.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }] }));
  pass.dispatchWorkgroups(Math.ceil(words.length / 64));
  pass.end();
  enc.copyBufferToBuffer(dst, 0, read, 0, words.length * 48);
  dev.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(read.getMappedRange().slice(0));
  for (const b of [src, dst, read]) b.destroy();
  return out;
}

describe('weight decoders', () => {
  it('i8x4 and nib4: every byte value in every lane, exactly the converted integers', async () => {
    // Each byte value in each lane (b · 0x01010101 and its lanes rotated against each other), then random words.
    const words: number[] = [];
    for (let b = 0; b < 256; b++) words.push((b * 0x01010101) >>> 0, ((b << 24) | (((b + 85) & 255) << 16) | (((b + 170) & 255) << 8) | ((b + 37) & 255)) >>> 0);
    let s = 12345;
    for (let i = 0; i < 4096; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      words.push(s >>> 0);
    }
    const u = Uint32Array.from(words);
    const got = await decode(u);
    const want = new Float32Array(got.length);
    u.forEach((w, i) => {
      for (let e = 0; e < 4; e++) {
        const byte = (w >>> (8 * e)) & 255;
        want[12 * i + e] = byte >= 128 ? byte - 256 : byte;
        want[12 * i + 4 + e] = (byte & 15) - 8;
        want[12 * i + 8 + e] = (byte >>> 4) - 8;
      }
    });
    // Bit for bit (a -0 or an off-by-one float would show here).
    expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(want.buffer));
  });
});
