// The one catalogue of errors a user can see. Each has a stable code (documented in
// docs/errors.md), an HTTP status, and a message that names what was wrong and what to do.
// Modelled on Fastify's lib/errors.js: codes never change meaning once published.

export const ERROR_CATALOGUE = {
  INGOT_ERR_VALIDATION: { status: 400, title: 'the request is not valid' },
  INGOT_ERR_MALFORMED_BODY: { status: 400, title: 'the request body could not be parsed' },
  INGOT_ERR_UNAUTHENTICATED: { status: 401, title: 'authentication required' },
  INGOT_ERR_FORBIDDEN: { status: 403, title: 'not allowed by policy' },
  INGOT_ERR_NOT_FOUND: { status: 404, title: 'not found' },
  INGOT_ERR_ALREADY_EXISTS: { status: 409, title: 'already exists' },
  INGOT_ERR_CONFLICT: { status: 409, title: 'the resource was changed by someone else' },
  INGOT_ERR_BODY_TOO_LARGE: { status: 413, title: 'the request body is too large' },
  INGOT_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'unsupported content type' },
  INGOT_ERR_UNPROCESSABLE: { status: 422, title: 'the request is well-formed but cannot be applied' },
  INGOT_ERR_RATE_LIMITED: { status: 429, title: 'too many requests' },
  INGOT_ERR_QUOTA_EXCEEDED: { status: 403, title: 'a hard project quota would be exceeded' },
  INGOT_ERR_INTERNAL: { status: 500, title: 'internal error' },
  INGOT_ERR_NOT_IMPLEMENTED: { status: 501, title: 'not implemented yet' },
  INGOT_ERR_UNAVAILABLE: { status: 503, title: 'service unavailable' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** One problem with one field of the input; `field` is a JSON-pointer-like path (`spec.bmc.address`). */
export interface FieldProblem {
  field: string;
  message: string;
}

/** An error meant for a user: stable code, HTTP status, and a message that says what to do. */
export class IngotError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: FieldProblem[];

  constructor(code: ErrorCode, message: string, opts: { details?: FieldProblem[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IngotError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.details = opts.details ?? [];
  }

  toJSON(): { code: ErrorCode; message: string; details?: FieldProblem[] } {
    return this.details.length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export function validationError(problems: FieldProblem[]): IngotError {
  const summary = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  return new IngotError('INGOT_ERR_VALIDATION', summary, { details: problems });
}

export function notFound(kind: string, name: string, project?: string): IngotError {
  const where = project ? ` in project "${project}"` : '';
  return new IngotError('INGOT_ERR_NOT_FOUND', `${kind} "${name}"${where} does not exist; check the name with \`ingot ${kind.toLowerCase()} list\``);
}

export function conflict(kind: string, name: string, expected: string, actual: string): IngotError {
  return new IngotError(
    'INGOT_ERR_CONFLICT',
    `${kind} "${name}" has resourceVersion ${actual}, not ${expected}: it was changed since you read it; read it again and reapply your change`,
  );
}

export function alreadyExists(kind: string, name: string): IngotError {
  return new IngotError('INGOT_ERR_ALREADY_EXISTS', `${kind} "${name}" already exists; use \`ingot apply\` to update it, or choose another name`);
}
