/**
 * Llama and Mistral fixtures (fp32, bf16, Q8_0, Q4_0; the host executor's native and portable kernels)
 * through the device plan on the host and WebGPU executors, against the same rank's tfjs forward and Hugging
 * Face (the table of layers' planFixtureSuite, which says what each executor compares).
 */
import { planFixtureSuite } from '../../layers/test-support/plan-fixture-suite.js';
import { registration } from './registration.js';

planFixtureSuite(
  'Llama and Mistral',
  registration,
  [
    { fixture: 'llama-tiny' },
    { fixture: 'llama-bf16', dtype: 'bfloat16' },
    { fixture: 'llama-tiny', quantization: 'q8_0' },
    { fixture: 'llama-tiny', quantization: 'q4_0' },
    { fixture: 'llama-mqa-tied-llama3' },
    { fixture: 'mistral-swa-tiny' },
  ],
  [undefined, 'portable'],
);
