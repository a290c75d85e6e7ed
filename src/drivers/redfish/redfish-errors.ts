// Turns what went wrong talking to a BMC into the driver contract's error classes
// (src/drivers/driver.ts), with messages that say what failed and what the operator can do.
// Nothing here ever sees a password or a session token: callers pass only host name, method
// and URL (which never carries credentials: bmc-address.ts refuses user:pass@ in addresses).
import type { BmcTarget } from '../driver.js';
import { BmcAuthenticationError, BmcCertificateError, BmcRefused, BmcUnreachable } from '../driver.js';

/** Node/OpenSSL error codes that mean "the certificate could not be verified". */
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/** Connection failures where the request provably never reached the BMC (safe to resend any method). */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Walks `cause` chains (undici wraps socket errors) and returns every `code` found. */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    current = (current as { cause?: unknown }).cause;
  }
  return codes;
}

export function certificateFailureCode(err: unknown): string | undefined {
  return errorCodes(err).find((c) => CERTIFICATE_CODES.has(c));
}

export function failedBeforeSending(err: unknown): boolean {
  return errorCodes(err).some((c) => NOT_SENT_CODES.has(c));
}

const CERTIFICATE_HINTS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by a trusted CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a CA that is not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it presented a self-signed certificate',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet (check the BMC clock)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate does not name the address in spec.bmc.address',
};

export function certificateError(target: BmcTarget, url: string, code: string, cause: unknown): BmcCertificateError {
  const what = CERTIFICATE_HINTS[code] ?? 'its certificate could not be verified';
  const trust = target.tls.caBundle
    ? 'the CA bundle in spec.bmc.caBundleName does not verify it: put the CA that signed the BMC certificate in that Secret as ca.crt'
    : 'set spec.bmc.caBundleName to a Secret holding the BMC\'s CA as ca.crt';
  return new BmcCertificateError(
    `host "${target.hostName}": TLS verification of the BMC at ${url} failed (${code}): ${what}; ${trust}, ` +
      'or (where policy allows) set spec.bmc.disableCertificateVerification: true',
    { cause },
  );
}

export function authenticationError(target: BmcTarget, status: number, url: string): BmcAuthenticationError {
  const detail =
    status === 403
      ? 'refused access (HTTP 403): the account may lack the Redfish privileges Ingot needs (Login, ConfigureComponents)'
      : 'rejected the credentials (HTTP 401)';
  const secret = target.credentialsName ? `Secret "${target.credentialsName}" (spec.bmc.credentialsName)` : 'Secret named by spec.bmc.credentialsName';
  return new BmcAuthenticationError(`host "${target.hostName}": the BMC at ${url} ${detail}; check the username and password in the ${secret} and update the secret`);
}

export function unreachableError(target: BmcTarget, method: string, url: string, attempts: number, last: string, cause?: unknown): BmcUnreachable {
  const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
  return new BmcUnreachable(`host "${target.hostName}": ${method} ${url} failed after ${tries}: ${last}`, cause === undefined ? undefined : { cause });
}

/**
 * Pulls human-readable messages from a Redfish error body (DSP0266 "Error responses":
 * `error.message` plus `error.@Message.ExtendedInfo[].Message`), bounded so a chatty BMC
 * cannot blow up an error message.
 */
export function redfishMessages(body: unknown): string[] {
  const out: string[] = [];
  const err = (body as { error?: Record<string, unknown> } | undefined)?.error;
  const push = (m: unknown): void => {
    if (typeof m === 'string' && m.trim() && out.length < 5 && !out.includes(m.trim())) out.push(m.trim().slice(0, 300));
  };
  if (err && typeof err === 'object') {
    const info = err['@Message.ExtendedInfo'];
    if (Array.isArray(info)) for (const i of info) push((i as { Message?: unknown })?.Message);
    if (out.length === 0) push(err['message']);
  }
  // Task resources carry Messages[] (Task schema) rather than an error object.
  const messages = (body as { Messages?: unknown } | undefined)?.Messages;
  if (Array.isArray(messages)) for (const m of messages) push((m as { Message?: unknown })?.Message);
  return out;
}

export function refusedError(target: BmcTarget, method: string, url: string, status: number, body: unknown, what?: string): BmcRefused {
  const messages = redfishMessages(body);
  const said = messages.length ? `: ${messages.join('; ')}` : '';
  const context = what ? `${what}: ` : '';
  return new BmcRefused(`host "${target.hostName}": ${context}the BMC refused ${method} ${url} (HTTP ${status})${said}`);
}
