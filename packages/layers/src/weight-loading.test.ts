/** Strict loading from a real safetensors file: missing tensors and wrong shapes are named; unused tensors reported. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Checkpoint, writeSafetensors } from '@weft/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Parameter } from './parameter.js';
import { loadWeights, type StackedParamMapping } from './weight-loading.js';
import { fusedShardLoader } from './linear/merged-column-parallel-linear.js';

beforeAll(() => tf.setBackend('cpu'));

const f32 = (shape: number[], start = 0) => ({ dtype: 'F32' as const, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => start + i) });

function checkpoint(tensors: Record<string, ReturnType<typeof f32>>): Checkpoint {
  const dir = mkdtempSync(join(tmpdir(), 'weft-load-'));
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return Checkpoint.open(dir);
}

const stacked: StackedParamMapping[] = [
  { param: '.gate_up_proj', checkpoint: '.gate_proj', shardId: 0 },
  { param: '.gate_up_proj', checkpoint: '.up_proj', shardId: 1 },
];

function params() {
  const norm = new Parameter('m.norm.weight', [3]);
  const gateUp = new Parameter(
    'm.mlp.gate_up_proj.weight',
    [4, 3],
    fusedShardLoader([
      { id: 0, size: 2, per: 2, srcOffset: 0, dstOffset: 0 },
      { id: 1, size: 2, per: 2, srcOffset: 0, dstOffset: 2 },
    ]),
    [0, 1],
  );
  return { norm, gateUp };
}

describe('loadWeights', () => {
  it('fills fused parameters from separate checkpoint tensors and reports unused ones', () => {
    const ckpt = checkpoint({ 'm.norm.weight': f32([3]), 'm.mlp.gate_proj.weight': f32([2, 3]), 'm.mlp.up_proj.weight': f32([2, 3], 100), 'm.extra': f32([1]) });
    const { norm, gateUp } = params();
    const progress: number[] = [];
    const res = loadWeights({ params: [norm, gateUp], checkpoint: ckpt, stacked, onProgress: (l) => progress.push(l) });
    expect(res.unused).toEqual(['m.extra']);
    expect(progress).toEqual([1, 2, 3]);
    expect(Array.from(gateUp.tensor.dataSync())).toEqual([0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105]);
    ckpt.close();
  });

  it('names a missing checkpoint tensor', () => {
    const ckpt = checkpoint({ 'm.norm.weight': f32([3]), 'm.mlp.gate_proj.weight': f32([2, 3]) });
    const { norm, gateUp } = params();
    expect(() => loadWeights({ params: [norm, gateUp], checkpoint: ckpt, stacked })).toThrow(/missing 1 tensor\(s\).*m\.mlp\.up_proj\.weight/);
    ckpt.close();
  });

  it('names a tensor of the wrong shape', () => {
    const ckpt = checkpoint({ 'm.norm.weight': f32([4]), 'm.mlp.gate_proj.weight': f32([2, 3]), 'm.mlp.up_proj.weight': f32([2, 3]) });
    const { norm, gateUp } = params();
    expect(() => loadWeights({ params: [norm, gateUp], checkpoint: ckpt, stacked })).toThrow(/m\.norm\.weight: shape \[4\] does not fit parameter m\.norm\.weight \(expected \[3\]\)/);
    ckpt.close();
  });

  it('skips tensors held elsewhere without reporting them', () => {
    const ckpt = checkpoint({ 'm.norm.weight': f32([3]), 'm.layers.9.w': f32([1]) });
    const norm = new Parameter('m.norm.weight', [3]);
    const res = loadWeights({ params: [norm], checkpoint: ckpt, elsewhere: (n) => n.startsWith('m.layers.9.') });
    expect(res.unused).toEqual([]);
    ckpt.close();
  });
});
