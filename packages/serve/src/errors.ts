/** OpenAI-shaped errors (`{"error": {message, type, param, code}}`) and the status each cause gets. */
import { EngineDeadError, RequestError } from '@weft/engine';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = typeForStatus(status),
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, param: string | null = null) => new ApiError(400, message, param);

function typeForStatus(status: number): string {
  switch (status) {
    case 400:
    case 413:
    case 415:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 404:
      return 'not_found_error';
    case 429:
      return 'rate_limit_error';
    case 503:
      return 'service_unavailable';
    default:
      return 'internal_server_error';
  }
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | number | null };
}

export function errorBody(e: ApiError): ErrorBody {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code ?? e.status } };
}

const snakeCase = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** What a body that is not JSON gets told. */
export const JSON_BODY = 'the request body must be a JSON object sent with Content-Type: application/json';

/** Whatever was thrown, as the ApiError to send: engine errors by name, Fastify's by status code. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  // The engine names fields as its API spells them (maxTokens); the HTTP API spells them max_tokens, in `param`
  // and in the message ("minTokens must be at most maxTokens" reached clients that never sent either).
  if (e instanceof RequestError) return new ApiError(400, e.message.replace(/\b[a-z]+(?:[A-Z][a-z0-9]*)+\b/g, snakeCase), e.field ? snakeCase(e.field) : null);
  if (e instanceof EngineDeadError) return new ApiError(503, `the engine is not running: ${e.message}`);
  const fe = e as { statusCode?: number; code?: string; message?: string };
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    let message = fe.message ?? 'bad request';
    if (fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (fe.statusCode === 400 && e instanceof SyntaxError)) message = `the body is not valid JSON: ${fe.message}`;
    else if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = `${JSON_BODY} (\`curl -d\` alone sends application/x-www-form-urlencoded: add -H 'content-type: application/json')`;
    else if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = `the request body is larger than this server accepts (${fe.message})`;
    return new ApiError(fe.statusCode, message, null, typeForStatus(fe.statusCode), fe.code ?? null);
  }
  return new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
}
