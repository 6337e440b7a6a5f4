/**
 * A model registered from outside reaches every rank: registered by module, each
 * rank (real worker threads) imports it; registered with an object, the driver
 * knows it and the ranks say why they do not.
 */
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registration as llama } from '@weft/llama';
import { describe, expect, it } from 'vitest';
import { LLM } from './llm.js';
import { modelModuleOf, registerModel, resolveArchitecture } from './registry.js';
import { RENAMED_ARCHITECTURE } from './test-entries/renamed-llama.js';

const tiny = fileURLToPath(new URL('../../../fixtures/llama-tiny', import.meta.url));
const moduleUrl = new URL('./test-entries/renamed-llama.ts', import.meta.url).href;
const IDS = [1, 5, 9, 200, 31];

/** llama-tiny with another name in config.json's architectures (weights linked, not copied). */
function renamedCheckpoint(architecture: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-registry-'));
  const config = JSON.parse(readFileSync(join(tiny, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, architectures: [architecture] }));
  symlinkSync(join(tiny, 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

describe('registerModel', () => {
  it('by module: every rank imports it (tp 2 on worker threads), and the logits are the built-in model\'s', async () => {
    registerModel([RENAMED_ARCHITECTURE], moduleUrl, 'renamedLlama');
    const dir = renamedCheckpoint(RENAMED_ARCHITECTURE);
    expect(resolveArchitecture(dir)).toBe(RENAMED_ARCHITECTURE);
    expect(modelModuleOf(RENAMED_ARCHITECTURE)).toEqual({ specifier: moduleUrl, exportName: 'renamedLlama' });
    const [mine, builtIn] = [await LLM.load(dir, { tp: 2 }), await LLM.load(tiny, { tp: 2 })];
    try {
      expect(mine.worldSize).toBe(2);
      const [a, b] = [await mine.logits(IDS), await builtIn.logits(IDS)];
      expect(a.map((r) => Array.from(r))).toEqual(b.map((r) => Array.from(r)));
      const [g] = await mine.generate([IDS], { maxTokens: 6, ignoreEos: true });
      expect(g!.tokenIds).toEqual((await builtIn.generate([IDS], { maxTokens: 6, ignoreEos: true }))[0]!.tokenIds);
    } finally {
      await Promise.all([mine.close(), builtIn.close()]);
    }
  });

  it('by module: a bad module or export fails on the driver, naming it, before any rank starts', async () => {
    registerModel('WeftMissingModule', '/nonexistent/weft-model.js');
    await expect(LLM.load(renamedCheckpoint('WeftMissingModule'))).rejects.toThrow(/model module file:\/\/\/nonexistent\/weft-model\.js \(architecture WeftMissingModule\): cannot import it/);
    registerModel('WeftWrongExport', moduleUrl, 'nope');
    await expect(LLM.load(renamedCheckpoint('WeftWrongExport'))).rejects.toThrow(/export nope is not a model registration/);
    registerModel('WeftOtherArch', moduleUrl, 'renamedLlama');
    await expect(LLM.load(renamedCheckpoint('WeftOtherArch'))).rejects.toThrow(/serves \["WeftRenamedLlamaForCausalLM"\], not WeftOtherArch/);
    expect(() => registerModel('X', './relative.js')).toThrow(/relative.*new URL\('\.\/relative\.js', import\.meta\.url\)\.href/);
  });

  it('with an object: known on the driver only; the ranks fail saying to register by module', async () => {
    registerModel({ architectures: ['WeftDriverOnlyLlama'], createModel: llama.createModel });
    const dir = renamedCheckpoint('WeftDriverOnlyLlama');
    expect(resolveArchitecture(dir)).toBe('WeftDriverOnlyLlama');
    await expect(LLM.load(dir, { tp: 2 })).rejects.toThrow(/WeftDriverOnlyLlama in this thread.*register it by module/s);
  });
});
