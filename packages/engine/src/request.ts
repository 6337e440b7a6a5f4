/** One sequence as the driver tracks it (vLLM's `Request`): its tokens, how many the KV cache already holds, its status. */
import type { BlockHash } from './block-pool.js';
import { hashBlockTokens } from './block-pool.js';
import type { SamplingParams } from './sampling-params.js';

export type FinishReason = 'stop' | 'length' | 'abort';
export type RequestStatus = 'waiting' | 'running' | 'finished';

export class Request {
  /** Prompt then output: every token known so far. */
  readonly tokens: number[];
  readonly outputTokenIds: number[] = [];
  /** Tokens whose K/V are in the cache (prefix-cache hits included). */
  numComputedTokens = 0;
  status: RequestStatus = 'waiting';
  finishReason: FinishReason | null = null;
  /** The stop string or stop token id (EOS included) that ended it; null otherwise (vLLM's `stop_reason`). */
  stopReason: string | number | null = null;
  /** Hashes of the full blocks of `tokens`, computed as blocks fill. */
  readonly blockHashes: BlockHash[] = [];
  /** Prefix-cache hits at its first scheduling (tokens). */
  numCachedTokens = -1;
  numPreemptions = 0;
  /** The ranks have not seen it since it was (re)started: send its history. */
  needsStart = true;

  constructor(
    /** Unique per engine; the ranks key their per-sequence state by it. */
    readonly seqId: number,
    readonly promptTokenIds: readonly number[],
    readonly params: SamplingParams,
    readonly arrival: number = performance.now(),
  ) {
    this.tokens = [...promptTokenIds];
  }

  get numTokens(): number {
    return this.tokens.length;
  }

  get numPromptTokens(): number {
    return this.promptTokenIds.length;
  }

  get isFinished(): boolean {
    return this.status === 'finished';
  }

  appendOutput(token: number): void {
    this.tokens.push(token);
    this.outputTokenIds.push(token);
  }

  /** Extend `blockHashes` over every full block of `tokens`. */
  updateBlockHashes(blockSize: number): void {
    const full = Math.floor(this.tokens.length / blockSize);
    for (let i = this.blockHashes.length; i < full; i++) {
      this.blockHashes.push(hashBlockTokens(i === 0 ? null : this.blockHashes[i - 1]!, this.tokens.slice(i * blockSize, (i + 1) * blockSize)));
    }
  }
}
