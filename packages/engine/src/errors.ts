/** Errors the engine gives callers: a bad request rejects that request only; a dead rank rejects everything. */
import { WeftError } from '@weft/core';

/** This request is invalid (bad parameter, empty or too long prompt, token id outside the vocabulary). The engine keeps serving. */
export class RequestError extends WeftError {
  override name = 'RequestError';
  constructor(
    message: string,
    /** The offending field, as the caller spelled it (`temperature`, `prompt`, `maxTokens`...). */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** A rank died or failed: every in-flight request rejects with this, and so does every later call. */
export class EngineDeadError extends WeftError {
  override name = 'EngineDeadError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
