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
    expect(webgpuOptionsFromEnv({ WEFT_WEBGPU_DAWN_FEATURES: 'allow_unsafe_apis, skip_validation' })).toEqual({ dawnFeatures: ['allow_unsafe_apis', 'skip_validation'] });
  });

  it('names the variable when a value is wrong', () => {
    expect(() => webgpuOptionsFromEnv({ WEFT_WEBGPU_BACKEND: 'metal' })).toThrow(/WEFT_WEBGPU_BACKEND must be 'vulkan' or 'opengl', got 'metal'/);
    expect(() => webgpuOptionsFromEnv({ WEFT_WEBGPU_SUBMIT_BATCH: '0' })).toThrow(/WEFT_WEBGPU_SUBMIT_BATCH must be a positive integer, got '0'/);
    expect(() => webgpuOptionsFromEnv({ WEFT_WEBGPU_DAWN_FEATURES: 'skip validation' })).toThrow(/WEFT_WEBGPU_DAWN_FEATURES must be a comma-separated list of Dawn toggle names .* got 'skip validation'/);
    expect(() => webgpuOptionsFromEnv({ WEFT_WEBGPU_DAWN_FEATURES: ' , ' })).toThrow(/WEFT_WEBGPU_DAWN_FEATURES/);
  });
});
