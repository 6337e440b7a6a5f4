/**
 * dtype bfloat16 holds every linear weight, the LM head and the embedding as
 * bf16 (norms stay fp32): on an fp32 checkpoint that must equal loading the
 * same checkpoint with its matrices rounded to bf16 on disk (then widened to
 * fp32), tied embeddings included,
 * at tp 1 and tp 2 (the vocabulary shard of rank 1 has padding rows).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Checkpoint, float32ToBf16, writeSafetensors, type TensorToWrite } from '@weft/core';
import { loadFixtureCases, parityBackends } from '@weft/layers';
import { afterAll, describe, expect, it } from 'vitest';
import { LLM } from './llm.js';

const src = fileURLToPath(new URL('../../../fixtures/llama-mqa-tied-llama3', import.meta.url));

/** The checkpoint with every matrix rounded to bf16 (as torch's `.to(torch.bfloat16)`); norms stay fp32, as weft holds them. */
function roundedCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bf16-'));
  copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
  const ckpt = Checkpoint.open(src);
  const tensors: Record<string, TensorToWrite> = {};
  try {
    for (const n of ckpt.names()) {
      const t = ckpt.read(n);
      tensors[n] = t.shape.length === 2 ? { dtype: 'BF16', shape: t.shape, data: float32ToBf16(t.data as Float32Array) } : { dtype: 'F32', shape: t.shape, data: t.data };
    }
  } finally {
    ckpt.close();
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

describe.each(parityBackends().map((b) => [b.backend, b] as const))('on %s', (_b, { backend, skip }) => {
  if (skip) {
    it.skip(skip, () => {});
    return;
  }
  const rounded = roundedCopy();
  afterAll(() => rmSync(rounded, { recursive: true, force: true }));
  const [c] = loadFixtureCases(src);

  it.each([1, 2])('tied embeddings, tp %i: dtype bfloat16 = the bf16-rounded checkpoint in fp32, and holds half the bytes', async (tp) => {
    const bf16 = await LLM.load(src, { tp, backend, dtype: 'bfloat16' });
    const ref = await LLM.load(rounded, { tp, backend });
    try {
      const [a, b] = [await bf16.logits(c!.input_ids), await ref.logits(c!.input_ids)];
      const err = Math.max(...a.map((row, t) => Math.max(...Array.from(row, (v, j) => Math.abs(v - b[t]![j]!)))));
      expect(err).toBeLessThanOrEqual(1e-5);
      // Against the fp32 reference the bf16 rounding shows (so the comparison above can fail).
      const fp32 = c!.logits;
      expect(Math.max(...a.flatMap((row, t) => Array.from(row, (v, j) => Math.abs(v - fp32[t * row.length + j]!))))).toBeGreaterThan(1e-4);
      const sum = (x: number[]) => x.reduce((p, q) => p + q, 0);
      expect(sum(bf16.weightBytesPerRank) / sum(ref.weightBytesPerRank)).toBeLessThan(0.51);
    } finally {
      await Promise.all([bf16.close(), ref.close()]);
    }
  });
});
