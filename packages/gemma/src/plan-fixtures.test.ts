/**
 * Gemma 2 (logit soft caps, GELU-tanh, alternating sliding windows, scaled embedding, 1 + w norms)
 * through the device plan on the host and WebGPU executors, against the same rank's tfjs forward and Hugging
 * Face (the table of layers' planFixtureSuite, which says what each executor compares).
 */
import { planFixtureSuite } from '../../layers/test-support/plan-fixture-suite.js';
import { registration } from './registration.js';

planFixtureSuite('Gemma 2', registration, [{ fixture: 'gemma2-tiny' }, { fixture: 'gemma2-mqa-untied' }]);
