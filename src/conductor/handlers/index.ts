// One handler per state, found in a Record so that a state without a handler does not compile
// (baremetal-operator's host_state_machine.go `handlers()` map, made total by the type).
// Cross-cutting checks run first, in a fixed order, before the state's handler.
import { FORCE_DELETE_ANNOTATION, type HostState } from '../../model/host.js';
import type { Outcome } from '../outcome.js';
import { DELETION_STATES } from '../transitions.js';
import { available } from './available.js';
import { deleting } from './deleting.js';
import { deprovisioning } from './deprovisioning.js';
import { error } from './error.js';
import { externallyProvisioned } from './externally-provisioned.js';
import { inspecting } from './inspecting.js';
import { poweringOffBeforeDelete } from './powering-off-before-delete.js';
import { preparing } from './preparing.js';
import { provisioned } from './provisioned.js';
import { provisioning } from './provisioning.js';
import { registering } from './registering.js';
import type { Handler, HandlerContext } from './types.js';
import { unmanaged } from './unmanaged.js';

export const HANDLERS: Record<HostState, Handler> = {
  registering,
  inspecting,
  preparing,
  available,
  provisioning,
  provisioned,
  deprovisioning,
  'powering-off-before-delete': poweringOffBeforeDelete,
  deleting,
  'externally-provisioned': externallyProvisioned,
  unmanaged,
  error,
};

/**
 * Checks that win over whatever the state's handler would do, in this order:
 * 1. deletion requested: leave for the deletion states, through cleaning where data may be;
 * 2. a `retry` backoff still running (status.nextAttemptAt, not for error, whose handler owns
 *    it): wait, unless the spec changed since (the admin may have fixed the cause).
 */
export function crossCutting(ctx: HandlerContext, specChanged: boolean): Outcome | undefined {
  const { host } = ctx;
  const state = host.status.provisioning.state;
  if (host.metadata.deletionTimestamp && !DELETION_STATES.has(state)) {
    const leaving = deletion(ctx);
    if (leaving) return leaving;
  }
  if (state !== 'error' && host.status.nextAttemptAt && !specChanged) {
    const due = Date.parse(host.status.nextAttemptAt);
    const now = ctx.clock.now();
    if (Number.isFinite(due) && due > now) return { kind: 'wait', afterMs: due - now };
  }
  return undefined;
}

/**
 * A deleted host leaves through cleaning when its disks may hold a tenant's data and cleaning
 * is on: provisioning or provisioned hosts deprovision first, a cleaning in progress goes on,
 * a failed deploy is cleaned, a failed cleaning is retried (error.ts, with backoff). A forced
 * delete (FORCE_DELETE_ANNOTATION) still cleans when it can, but gives up after one failed
 * cleaning or `deletePowerOffAttempts` unreachable BMC attempts, with a Warning event.
 */
function deletion(ctx: HandlerContext): Outcome | undefined {
  const { host } = ctx;
  const { state } = host.status.provisioning;
  const forced = host.metadata.annotations[FORCE_DELETE_ANNOTATION] !== undefined;
  const cleans = (host.spec.automatedCleaningMode ?? 'metadata') !== 'disabled' && host.spec.bmc !== undefined;
  const giveUp = (why: string): Outcome => {
    const message = `${why}; deleting anyway because the delete was forced: the disks may still hold the last tenant's data, erase them by hand`;
    return { kind: 'advance', event: 'delete', message, events: [{ type: 'Warning', reason: 'DeletedWithoutCleaning', message }] };
  };
  if (cleans) {
    if (state === 'provisioning' || state === 'provisioned') return { kind: 'advance', event: 'deprovision', message: 'deletion requested: cleaning the disks first' };
    if (state === 'deprovisioning') {
      if (forced && host.status.errorCount >= ctx.config.deletePowerOffAttempts) return giveUp(`cleaning could not reach the host in ${host.status.errorCount} attempts`);
      return undefined;
    }
    if (state === 'error' && host.status.errorType === 'provisioning') return { kind: 'advance', event: 'retry', to: 'deprovisioning', message: 'deletion requested after a failed deploy: cleaning the disks first' };
    if (state === 'error' && host.status.errorType === 'deprovisioning') return forced ? giveUp(`cleaning failed (${host.status.errorMessage})`) : undefined;
  }
  return { kind: 'advance', event: 'delete', message: forced ? 'forced deletion requested' : 'deletion requested' };
}

/** Runs the cross-cutting checks, then the state's handler. */
export async function runHandler(ctx: HandlerContext, specChanged: boolean): Promise<Outcome> {
  return crossCutting(ctx, specChanged) ?? (await HANDLERS[ctx.host.status.provisioning.state](ctx));
}
