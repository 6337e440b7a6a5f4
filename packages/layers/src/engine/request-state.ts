/** One prompt's progress through generation: tokens, stop conditions, incremental text. */

export interface GenerateOptions {
  maxTokens?: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  /** Stop when the text contains one of these (the stop string is not returned). */
  stop?: string[];
  /** Keep going past end-of-sequence tokens. */
  ignoreEos?: boolean;
  /** Also return the logits row each token was sampled from (`GenerateOutput.logits`). */
  returnLogits?: boolean;
}

export type FinishReason = 'length' | 'stop' | 'eos';

export interface GenerateOutput {
  index: number;
  promptTokenIds: number[];
  tokenIds: number[];
  text: string;
  finishReason: FinishReason;
  /** With `returnLogits`: the logits each generated token was sampled from. */
  logits?: Float32Array[];
}

export interface StreamEvent {
  /** Which prompt. */
  index: number;
  tokenId: number;
  /** New text since the previous event of this prompt. */
  text: string;
  finished: boolean;
  finishReason?: FinishReason;
}

export class RequestState {
  readonly tokenIds: number[] = [];
  readonly logits: Float32Array[] = [];
  contextLen = 0;
  finished = false;
  finishReason: FinishReason = 'length';
  private text = '';
  /** Text already streamed out. */
  private emitted = '';
  private readonly maxTokens: number;

  constructor(
    readonly index: number,
    readonly seqId: number,
    readonly promptTokenIds: number[],
    private readonly opts: GenerateOptions,
    private readonly eos: number[],
    private readonly decode: (ids: number[]) => string,
  ) {
    if (promptTokenIds.length === 0) throw new Error(`prompt ${index} is empty: it needs at least one token`);
    this.maxTokens = opts.maxTokens ?? 16;
    if (this.maxTokens <= 0) this.finished = true;
  }

  get wantsLogits(): boolean {
    return this.opts.returnLogits === true;
  }

  /** Tokens to feed this step: the prompt first, then the last sampled token. */
  pendingTokens(): number[] {
    return this.contextLen === 0 ? this.promptTokenIds : [this.tokenIds[this.tokenIds.length - 1]!];
  }

  /** Record the sampled token; returns the stream event. */
  accept(token: number): StreamEvent {
    this.contextLen += this.pendingTokens().length;
    this.tokenIds.push(token);
    if (!this.opts.ignoreEos && this.eos.includes(token)) {
      this.finish('eos');
    } else {
      this.text = this.decode(this.tokenIds);
      const stopAt = this.findStop();
      if (stopAt >= 0) {
        this.text = this.text.slice(0, stopAt);
        this.finish('stop');
      } else if (this.tokenIds.length >= this.maxTokens) {
        this.finish('length');
      }
    }
    // A token may end mid-character (byte-level BPE): hold back a trailing U+FFFD until it completes.
    const shown = this.finished ? this.text : this.text.replace(/\uFFFD+$/, '');
    let delta = '';
    if (shown.startsWith(this.emitted)) {
      delta = shown.slice(this.emitted.length);
      this.emitted = shown;
    }
    return { index: this.index, tokenId: token, text: delta, finished: this.finished, finishReason: this.finished ? this.finishReason : undefined };
  }

  private findStop(): number {
    let at = -1;
    for (const s of this.opts.stop ?? []) {
      const i = s ? this.text.indexOf(s) : -1;
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    return at;
  }

  private finish(reason: FinishReason): void {
    this.finished = true;
    this.finishReason = reason;
  }

  output(): GenerateOutput {
    const out: GenerateOutput = { index: this.index, promptTokenIds: this.promptTokenIds, tokenIds: this.tokenIds, text: this.text, finishReason: this.finishReason };
    if (this.opts.returnLogits) out.logits = this.logits;
    return out;
  }
}
