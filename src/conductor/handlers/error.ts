// error: a step failed (status.errorType says which). After the backoff in
// status.nextAttemptAt, go back to the state the step belongs to (RETRY_TARGETS; a
// power-management error returns to the resting state it came from, kept in
// stepState.resumeState) with the event `retry`. status.errorCount is kept across the retry,
// so a step that keeps failing backs off further; it resets when the step succeeds.
//
// A registration error also retries at once when the admin fixed something: the credentials
// secret has a new version, or the spec changed since the failure. A power-management error
// retries at once when the spec changed (e.g. spec.online asks for what the machine already is).
// An inspection error retries at once when the spec changed (e.g. spec.inspection: bmc), and
// after `inspectionAttempts` failures no longer retries on its own: it stays in error until
// the spec changes, rather than booting an agent that never answers forever.
import type { HostState } from '../../model/host.js';
import { RETRY_TARGETS } from '../transitions.js';
import { specHash } from '../spec-hash.js';
import type { Handler, HandlerContext } from './types.js';

export const RESUME_STATE = 'resumeState';
export const FAILED_SPEC_HASH = 'failedSpecHash';
export const FAILED_CREDENTIALS_VERSION = 'credentialsVersion';

export const error: Handler = async (ctx) => {
  const status = ctx.host.status;
  if (status.errorType === '') {
    // Written by hand or by an older version: nothing says where to go back. Registration is
    // the safe start: it touches no disk.
    return { kind: 'advance', event: 'retry', to: 'registering', message: 'error without errorType: registering again' };
  }
  if (status.errorType === 'provisioning' && !ctx.host.spec.image) {
    // Nothing to deploy any more: clean at once (no backoff: it is what the spec asks for), so
    // a released claim's host is wiped and freed rather than retrying a deploy forever.
    return { kind: 'advance', event: 'retry', to: 'deprovisioning', message: 'spec.image was removed after a failed deploy: cleaning the host' };
  }
  const to = retryTarget(ctx);
  if (status.errorType === 'registration' && (await adminFixedSomething(ctx))) {
    return { kind: 'advance', event: 'retry', to, message: 'retrying registration: credentials or spec changed' };
  }
  if ((status.errorType === 'power-management' || status.errorType === 'inspection') && specChanged(ctx)) {
    return { kind: 'advance', event: 'retry', to, message: `retrying ${status.errorType}: spec changed` };
  }
  if (status.errorType === 'inspection' && status.errorCount >= ctx.config.inspectionAttempts) {
    return { kind: 'wait', afterMs: ctx.config.idleRecheckMs };
  }
  const due = status.nextAttemptAt ? Date.parse(status.nextAttemptAt) : 0;
  const now = ctx.clock.now();
  if (Number.isFinite(due) && due > now) return { kind: 'wait', afterMs: due - now };
  return { kind: 'advance', event: 'retry', to, message: `retrying after ${status.errorType} error (attempt ${status.errorCount + 1})` };
};

function retryTarget(ctx: HandlerContext): HostState {
  const status = ctx.host.status;
  const allowed = RETRY_TARGETS[status.errorType as keyof typeof RETRY_TARGETS];
  // provisioning retries into provisioning; its deprovisioning target is for a removed image (above).
  const resume = status.stepState?.[RESUME_STATE];
  return allowed.find((s) => s === resume) ?? allowed[0]!;
}

function specChanged(ctx: HandlerContext): boolean {
  const remembered = ctx.host.status.stepState?.[FAILED_SPEC_HASH];
  return typeof remembered === 'string' && remembered !== specHash(ctx.host.spec);
}

async function adminFixedSomething(ctx: HandlerContext): Promise<boolean> {
  const remembered = ctx.host.status.stepState ?? {};
  if (specChanged(ctx)) return true;
  try {
    const { version } = await ctx.credentials.resolve(ctx.host);
    return version !== remembered[FAILED_CREDENTIALS_VERSION];
  } catch {
    // Still missing or unreadable: nothing new to try.
    return false;
  }
}
