/**
 * Phi-3 (fused qkv and gate_up, partial rotary)
 * through the device plan on the host and WebGPU executors, against the same rank's tfjs forward and Hugging
 * Face (the table of layers' planFixtureSuite, which says what each executor compares).
 */
import { planFixtureSuite } from '../../layers/test-support/plan-fixture-suite.js';
import { registration } from './registration.js';

planFixtureSuite('Phi-3', registration, [{ fixture: 'phi3-tiny' }, { fixture: 'phi3-mqa-partial' }]);
