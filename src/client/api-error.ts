// The one error type the client throws for anything the API (or the road to it) refused.
// Server answers carry the API's {code, message, details}; failures before an answer (no
// connection, oversized or unparsable response) use status 0 and a client-side code, so a
// caller can tell "the server said no" from "we never heard the server" with one check.
import type { FieldProblem } from '../model/errors.js';

/** Codes the client itself produces, beside the server's INGOT_ERR_* catalogue. */
export type ClientErrorCode =
  | 'INGOT_ERR_CONNECTION'
  | 'INGOT_ERR_TIMEOUT'
  | 'INGOT_ERR_RESPONSE_TOO_LARGE'
  | 'INGOT_ERR_BAD_RESPONSE';

export class ApiError extends Error {
  /** HTTP status; 0 when no answer was received. */
  readonly status: number;
  /** INGOT_ERR_* from the server's catalogue, or a ClientErrorCode. */
  readonly code: string;
  readonly details: FieldProblem[];
  /** The API base URL the request went to (for messages such as "cannot reach …"). */
  readonly server: string;

  constructor(init: { status: number; code: string; message: string; details?: FieldProblem[]; server: string; cause?: unknown }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ApiError';
    this.status = init.status;
    this.code = init.code;
    this.details = init.details ?? [];
    this.server = init.server;
  }

  /** True when the request never got an answer (server down, DNS, reset). */
  get isConnectionError(): boolean {
    return this.code === 'INGOT_ERR_CONNECTION' || this.code === 'INGOT_ERR_TIMEOUT';
  }
}

const SYSCALL_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed unexpectedly',
  EPIPE: 'connection closed unexpectedly',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not trusted (set INGOT_CA_FILE to the PEM file of the CA that issued it)',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate is not trusted (set INGOT_CA_FILE to the PEM file of the CA that issued it)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate does not name this host; connect by a name or address the certificate lists',
};

/** Turns what fetch threw (undici: TypeError('fetch failed') with a cause) into words. */
export function describeFetchFailure(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SYSCALL_WORDS[code]) return SYSCALL_WORDS[code];
    if (typeof code === 'string' && code.length > 0 && code !== 'ERR_INVALID_ARG_TYPE') {
      const msg = (e as Error).message;
      return msg ? `${code}: ${msg}` : code;
    }
    const next = (e as { cause?: unknown }).cause;
    if (!next) break;
    e = next;
  }
  return e instanceof Error ? e.message : String(e);
}
