/**
 * DeepSeek V3 and V2-Lite (MLA in both cache forms, MoE with shared experts, sigmoid + bias grouped routing
 * and softmax greedy routing)
 * through the device plan on the host and WebGPU executors, against the same rank's tfjs forward and Hugging
 * Face (the table of layers' planFixtureSuite, which says what each executor compares).
 */
import { planFixtureSuite } from '../../layers/test-support/plan-fixture-suite.js';
import { registration } from './registration.js';

const latent = { mlaKvCache: 'latent' };
const full = { mlaKvCache: 'full' };
planFixtureSuite('DeepSeek', registration, [
  { fixture: 'deepseek-v3-tiny', options: latent },
  { fixture: 'deepseek-v3-tiny', options: latent, quantization: 'q8_0', on: ['host'] },
  { fixture: 'deepseek-v3-tiny', options: latent, quantization: 'q4_0', on: ['host'] },
  { fixture: 'deepseek-v3-tiny', options: full },
  { fixture: 'deepseek-v3-tiny', options: full, quantization: 'q8_0', on: ['host'] },
  { fixture: 'deepseek-v2-lite-tiny', options: latent },
  { fixture: 'deepseek-v3-16e-top4', options: latent },
]);
