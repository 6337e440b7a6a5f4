/**
 * What the server needs from an engine: the part of `@weft/engine`'s `LLM`
 * it calls. The types are the engine's own (imported, never restated), so a
 * field the engine adds to its outputs reaches the routes.
 */
import type { LLM } from '@weft/engine';

export type EngineClient = Pick<LLM, 'tokenizer' | 'maxModelLen' | 'eosTokenIds' | 'generate' | 'stream' | 'promptLogprobs' | 'health' | 'stats' | 'close'>;
