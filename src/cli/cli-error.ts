// Errors the CLI shows a person: every message says what happened and what to do next.
import { ApiError } from '../client/api-error.js';
import { ClaimFailedError, ClaimWaitTimeoutError } from '../client/wait-for-claim.js';
import { HostFailedError, WaitTimeoutError } from '../client/wait-for-host-state.js';

/** A failure the CLI already phrased for the user; `exitCode` is what the process exits with. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export const LOGIN_HINT = 'set INGOT_SERVER and INGOT_TOKEN, or run `ingot login --server URL --token TOKEN`';

/** Words for any error that reaches the top of a command. */
export function explainError(err: unknown): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof HostFailedError) {
    if (err.failedIn === 'deleted') return `${err.message}; see what happened with \`ingot host events ${err.hostName}\``;
    return [
      err.message,
      `  see what happened: ingot host events ${err.hostName}`,
      `  then fix the cause (for example the BMC address or the credentials secret) and re-apply the host, or remove it: ingot host delete ${err.hostName}`,
    ].join('\n');
  }
  if (err instanceof WaitTimeoutError) {
    return `${err.message}; it may still get there: follow it with \`ingot host show ${err.hostName}\` and \`ingot host events ${err.hostName}\`, or wait longer with --timeout`;
  }
  if (err instanceof ClaimFailedError) {
    return [
      err.message,
      `  see it: ingot claim show ${err.claimName} --project ${err.project}`,
      `  then delete it and claim again once the cause is fixed: ingot claim delete ${err.claimName} --project ${err.project}`,
    ].join('\n');
  }
  if (err instanceof ClaimWaitTimeoutError) return explainClaimTimeout(err);
  if (err instanceof ApiError) return explainApiError(err);
  if (err instanceof Error) return err.message;
  return String(err);
}

function explainClaimTimeout(err: ClaimWaitTimeoutError): string {
  const p = `--project ${err.project}`;
  const next =
    err.kind === 'claimset'
      ? `follow it with \`ingot claimset show ${err.objectName} ${p}\` and \`ingot claim list ${p}\``
      : err.target === 'deleted'
        ? `the controller is still releasing it (cleaning the host); follow it with \`ingot claim show ${err.objectName} ${p}\`, and if it stays, ask a platform admin to check the claim controller and the host`
        : err.lastSeen.startsWith('pending')
          ? `a pending claim waits for a free host that matches its node type; check the reason above, \`ingot claim show ${err.objectName} ${p}\` and \`ingot nodetype list ${p}\`, or ask a platform admin for capacity`
          : `it may still get there: follow it with \`ingot claim show ${err.objectName} ${p}\``;
  return `${err.message}\n  ${next}; or wait longer with --timeout`;
}

export function explainApiError(err: ApiError): string {
  // A hard quota answers 403 too, but no role will help: name the quota and what frees it.
  if (err.code === 'INGOT_ERR_QUOTA_EXCEEDED') return `refused by quota: ${err.message}`;
  if (err.code === 'INGOT_ERR_CONNECTION') {
    return `${err.message}. Is \`ingot server\` running? Set INGOT_SERVER or run \`ingot login\``;
  }
  if (err.code === 'INGOT_ERR_TIMEOUT') return `${err.message}; check that the server is healthy (curl ${err.server}/readyz) and try again`;
  switch (err.status) {
    case 401:
      return `the token was refused: ${err.message}; get a valid token and run \`ingot login --server ${err.server} --token TOKEN\` (or set INGOT_TOKEN)`;
    case 403:
      // The server's message usually says already whom to ask; do not say it twice.
      return /ask a platform admin|ask an operator/.test(err.message) ? `not allowed: ${err.message}` : `not allowed: ${err.message}; ask a platform admin for a role that allows it`;
    case 429:
      return `${err.message}; the server is rate limiting you, wait a moment and try again`;
    default:
      break;
  }
  const details = err.details.length > 0 && !err.details.every((d) => err.message.includes(d.field))
    ? '\n' + err.details.map((d) => `  ${d.field}: ${d.message}`).join('\n')
    : '';
  if (err.status >= 500) return `the server failed (${err.status} ${err.code}): ${err.message}${details}; look at the server log and try again`;
  return `${err.message}${details}`;
}
