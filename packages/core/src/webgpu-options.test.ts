import { describe, expect, it } from 'vitest';
import { webgpuOptionsFromEnv } from './backend.js';

describe('webgpuOptionsFromEnv (read once by a rank launcher, passed to initBackend)', () => {
  it('reads the WEFT_WEBGPU_* switches', () => {
    expect(webgpuOptionsFromEnv({})).toEqual({});
    expect(webgpuOptionsFromEnv({ WEFT_WEBGPU_BACKEND: 'opengl', WEFT_WEBGPU_SUBMIT_BATCH: '64', WEFT_WEBGPU_PIN_LIBS: '0' })).toEqual({
      dawnBackend: 'opengl',
      submitBatch: 64,
      pinLibraries: false,
    });
  });

  it('names the variable when a value is wrong', () => {
    expect(() => webgpuOptionsFromEnv({ WEFT_WEBGPU_BACKEND: 'metal' })).toThrow(/WEFT_WEBGPU_BACKEND must be 'vulkan' or 'opengl', got 'metal'/);
    expect(() => webgpuOptionsFromEnv({ WEFT_WEBGPU_SUBMIT_BATCH: '0' })).toThrow(/WEFT_WEBGPU_SUBMIT_BATCH must be a positive integer, got '0'/);
  });
});
