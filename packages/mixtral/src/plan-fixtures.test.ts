/**
 * Mixtral (a FusedMoE in every layer, `block_sparse_moe` names, softmax top-k renormalised, 3 experts,
 * Mistral's sliding window; on WebGPU the router's logits are routed on the host, each expert's rows run on
 * the device)
 * through the device plan on the host and WebGPU executors, against the same rank's tfjs forward and Hugging
 * Face (the table of layers' planFixtureSuite, which says what each executor compares).
 */
import { planFixtureSuite } from '../../layers/test-support/plan-fixture-suite.js';
import { registration } from './registration.js';

planFixtureSuite('Mixtral', registration, [
  { fixture: 'mixtral-tiny' },
  { fixture: 'mixtral-tiny', quantization: 'q8_0', on: ['host'] },
  { fixture: 'mixtral-tiny', quantization: 'q4_0', on: ['host'] },
  { fixture: 'mixtral-3e' },
  { fixture: 'mixtral-swa-tiny' },
]);
