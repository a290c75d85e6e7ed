// One handler per state, found in a Record so that a state without a handler does not compile
// (baremetal-operator's host_state_machine.go `handlers()` map, made total by the type).
// Cross-cutting checks run first, in a fixed order, before the state's handler.
import type { HostState } from '../../model/host.js';
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
 * 1. deletion requested: leave for the deletion states from anywhere;
 * 2. a `retry` backoff still running (status.nextAttemptAt, not for error, whose handler owns
 *    it): wait, unless the spec changed since (the admin may have fixed the cause).
 */
export function crossCutting(ctx: HandlerContext, specChanged: boolean): Outcome | undefined {
  const { host } = ctx;
  const state = host.status.provisioning.state;
  if (host.metadata.deletionTimestamp && !DELETION_STATES.has(state)) {
    return { kind: 'advance', event: 'delete', message: 'deletion requested' };
  }
  if (state !== 'error' && host.status.nextAttemptAt && !specChanged) {
    const due = Date.parse(host.status.nextAttemptAt);
    const now = ctx.clock.now();
    if (Number.isFinite(due) && due > now) return { kind: 'wait', afterMs: due - now };
  }
  return undefined;
}

/** Runs the cross-cutting checks, then the state's handler. */
export async function runHandler(ctx: HandlerContext, specChanged: boolean): Promise<Outcome> {
  return crossCutting(ctx, specChanged) ?? (await HANDLERS[ctx.host.status.provisioning.state](ctx));
}
