/**
 * Errors weft throws on purpose. Each names what is wrong (file, tensor, shape,
 * rank, option) so the CLI can print one clear line and exit non-zero.
 */
export class WeftError extends Error {
  override name = 'WeftError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A configuration or option that cannot work (heads not divisible by tp, world size mismatch, ...). */
export class ConfigError extends WeftError {
  override name = 'ConfigError';
}

/** A checkpoint file that is missing, truncated or malformed. */
export class CheckpointError extends WeftError {
  override name = 'CheckpointError';
}

/** A collective or rendezvous that did not complete in time, or lost a peer. */
export class CollectiveTimeoutError extends WeftError {
  override name = 'CollectiveTimeoutError';
}
