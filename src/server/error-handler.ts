// The one place errors become responses: IngotError -> its status and {code, message, details};
// schema failures -> 400 INGOT_ERR_VALIDATION naming each field; Fastify's own client errors ->
// the matching catalogue entry; anything else -> 500 with only a request id, so internals
// (SQL, stack traces, file paths) never reach a client. The full error goes to the log.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { IngotError, validationError, type ErrorCode } from '../model/errors.js';
import { humanizeSchemaErrors, type SchemaError } from './validation-messages.js';

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: { field: string; message: string }[];
  requestId: string;
}

const PART_PREFIX: Record<string, string> = { body: '', querystring: 'query', params: 'path', headers: 'header' };

/** Fastify's client-error codes we expect, mapped to the catalogue (see fastify lib/errors.js). */
const FASTIFY_CODES: Record<string, { code: ErrorCode; message: (e: FastifyError) => string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: 'INGOT_ERR_BODY_TOO_LARGE',
    message: () => 'the request body is larger than the server accepts (1 MiB by default); split the manifest or shrink the value',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'INGOT_ERR_UNSUPPORTED_MEDIA_TYPE',
    message: () => 'unsupported Content-Type; send application/json, application/yaml or (for PATCH) application/merge-patch+json',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    code: 'INGOT_ERR_MALFORMED_BODY',
    message: () => 'the body is empty but Content-Type says JSON; send a JSON document or drop the Content-Type header',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'INGOT_ERR_MALFORMED_BODY',
    message: () => 'Content-Length does not match the body that was sent',
  },
};

/** Converts any thrown value into the response status and body. Exported for tests and the agent server. */
export function toErrorResponse(error: unknown, requestId: string): { status: number; body: ErrorBody } {
  if (error instanceof IngotError) {
    const json = error.toJSON();
    return { status: error.status, body: { ...json, requestId } };
  }
  const fe = error as Partial<FastifyError> & { validation?: SchemaError[]; validationContext?: string };
  if (Array.isArray(fe.validation)) {
    const prefix = PART_PREFIX[fe.validationContext ?? 'body'] ?? '';
    const problems = humanizeSchemaErrors(fe.validation, prefix);
    return toErrorResponse(validationError(problems), requestId);
  }
  const known = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (known) {
    return toErrorResponse(new IngotError(known.code, known.message(fe as FastifyError)), requestId);
  }
  // Other Fastify client errors (bad URL encoding and the like) carry safe, fixed messages.
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 && typeof fe.code === 'string' && fe.code.startsWith('FST_')) {
    const code: ErrorCode = fe.statusCode === 404 ? 'INGOT_ERR_NOT_FOUND' : fe.statusCode === 415 ? 'INGOT_ERR_UNSUPPORTED_MEDIA_TYPE' : 'INGOT_ERR_VALIDATION';
    return { status: fe.statusCode === 404 || fe.statusCode === 415 ? fe.statusCode : 400, body: { code, message: fe.message ?? 'bad request', requestId } };
  }
  return {
    status: 500,
    body: {
      code: 'INGOT_ERR_INTERNAL',
      message: `internal error; the server log has the details under request id ${requestId}`,
      requestId,
    },
  };
}

export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toErrorResponse(error, request.id);
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  else request.log.info({ code: body.code, status }, 'request refused');
  if (status === 401) void reply.header('www-authenticate', 'Bearer realm="ingot"');
  void reply.status(status).type('application/json').send(body);
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  const error = new IngotError('INGOT_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}; see GET /api/openapi.json for the API`);
  errorHandler(error, request, reply);
}
