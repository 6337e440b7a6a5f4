/**
 * What the server needs from an engine, structurally: `@weft/engine`'s `LLM`
 * satisfies it without this package importing the engine (the HTTP layer
 * knows requests and text, never ranks or tensors).
 */

export type Prompt = string | number[];

export interface SamplingParamsInit {
  n?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  maxTokens?: number;
  stop?: string[];
  stopTokenIds?: number[];
  seed?: number;
  ignoreEos?: boolean;
  /** How many top logprobs to return with each token (0: the sampled token's only). */
  logprobs?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  repetitionPenalty?: number;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
  top: { tokenId: number; logprob: number }[];
}

export interface GenerateOutput {
  index: number;
  promptTokenIds: number[];
  tokenIds: number[];
  text: string;
  finishReason: FinishReason;
  logprobs?: TokenLogprob[];
}

/** One delta of a streamed request. */
export interface StreamEvent {
  index: number;
  text: string;
  tokenIds: number[];
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | null;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  promptTokens: number;
  generationTokens: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  preemptions: number;
}

export interface TokenizerLike {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  readonly vocabSize: number;
}

export interface EngineClient {
  readonly tokenizer: TokenizerLike | null;
  readonly maxModelLen: number;
  readonly eosTokenIds: number[];
  generate(prompts: Prompt[], params?: SamplingParamsInit | SamplingParamsInit[], opts?: { signal?: AbortSignal }): Promise<GenerateOutput[]>;
  stream(prompt: Prompt, params?: SamplingParamsInit, opts?: { signal?: AbortSignal }): AsyncGenerator<StreamEvent>;
  health(): { ok: true } | { ok: false; error: string };
  stats(): EngineStats;
  close(): Promise<void>;
}

/** The engine's RequestError (a bad request; `field` names the parameter), recognised by name. */
export function isRequestError(e: unknown): e is Error & { field?: string } {
  return e instanceof Error && e.name === 'RequestError';
}

/** The engine's EngineDeadError (a rank died; every request fails until restart), recognised by name. */
export function isEngineDeadError(e: unknown): e is Error {
  return e instanceof Error && e.name === 'EngineDeadError';
}
