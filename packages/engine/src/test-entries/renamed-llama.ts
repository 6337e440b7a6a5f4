/** A model "from outside" for the registry test: Llama's factory under an architecture no built-in package serves. */
import type { ParallelState } from '@weft/comm';
import { registration as llama } from '@weft/llama';

export const RENAMED_ARCHITECTURE = 'WeftRenamedLlamaForCausalLM';

export const renamedLlama = {
  architectures: [RENAMED_ARCHITECTURE],
  createModel: (dir: string, state: ParallelState) => llama.createModel(dir, state),
};
