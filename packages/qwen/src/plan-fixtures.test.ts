/**
 * Qwen2 / Qwen3 / Qwen3-MoE (biases, q/k norm, sliding windows, tied heads, routed experts; on WebGPU the
 * router's logits are routed on the host, experts in ascending id on the device)
 * through the device plan on the host and WebGPU executors, against the same rank's tfjs forward and Hugging
 * Face (the table of layers' planFixtureSuite, which says what each executor compares).
 */
import { planFixtureSuite } from '../../layers/test-support/plan-fixture-suite.js';
import { registration } from './registration.js';

planFixtureSuite('Qwen2 / Qwen3 / Qwen3-MoE', registration, [
  { fixture: 'qwen2-tiny' },
  { fixture: 'qwen2-swa-tied' },
  { fixture: 'qwen3-tiny' },
  { fixture: 'qwen3-bias-tied' },
  { fixture: 'qwen3-moe-tiny' },
  { fixture: 'qwen3-moe-tiny', quantization: 'q4_0', on: ['host'] },
  { fixture: 'qwen3-moe-tiny', quantization: 'q8_0', on: ['host'] },
  { fixture: 'qwen3-moe-5e-dense' },
  { fixture: 'qwen3-moe-swa' },
]);
