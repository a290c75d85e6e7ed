// The host state machine as data (after Ironic's common/states.py + state_machine.py): every
// legal `(from, event) -> to` edge is a row below, and nothing else may move a host. Handlers
// (src/conductor/handlers/) decide WHEN an event fires; this table decides WHERE it leads. The
// engine checks the edge with `nextState` before it writes anything, so "what may follow
// provisioned?" is answered by reading the `provisioned` block, not every handler.
//
// States keep Metal3's names (what operators read on dashboards). Events are verbs, reused
// across states the way Ironic reuses deploy/done/fail.
import { HOST_STATES, type ErrorType, type HostState } from '../model/host.js';

export const HOST_EVENTS = [
  'register', // unmanaged host got BMC details: start registration
  'registered',
  'manage', // registration done for a host that already runs its OS (spec.externallyProvisioned)
  'inspect',
  'inspected',
  'prepared',
  'provision',
  'provisioned',
  'deprovision',
  'deprovisioned',
  'adopt', // spec.externallyProvisioned set on an available host
  'fail',
  'retry',
  'delete',
  'powered-off',
  'deleted',
] as const;
export type HostEvent = (typeof HOST_EVENTS)[number];

/** `gone`: the row is removed; there is no state after it. */
export type TransitionTarget = HostState | 'gone';

/**
 * Where each (error type) returns on `retry`. `power-management` returns to the stable state
 * the host was in when power failed, so it lists every state with power control.
 */
export const RETRY_TARGETS: Record<ErrorType, readonly HostState[]> = {
  registration: ['registering'],
  inspection: ['inspecting'],
  preparation: ['preparing'],
  // A failed deploy whose spec.image was removed (a claim released, an admin giving up) is
  // cleaned instead: the deploy may have written part of the disk (error.ts).
  provisioning: ['provisioning', 'deprovisioning'],
  deprovisioning: ['deprovisioning'],
  'power-management': ['available', 'provisioned', 'externally-provisioned'],
};

/** States whose handler may drive power to match spec.online. */
export const STATES_WITH_POWER_CONTROL: ReadonlySet<HostState> = new Set(['available', 'provisioned', 'externally-provisioned']);

/** Deletion is accepted in every state (Metal3 allows deleting a host at any point). */
export const DELETE_ALLOWED_STATES: ReadonlySet<HostState> = new Set(HOST_STATES);

/** States that are part of deletion; the delete check does not fire again in them. */
export const DELETION_STATES: ReadonlySet<HostState> = new Set(['powering-off-before-delete', 'deleting']);

/** Resting states: nothing happens until spec (or the hardware) changes. */
export const STABLE_STATES: ReadonlySet<HostState> = new Set(['available', 'provisioned', 'externally-provisioned', 'unmanaged', 'error']);

/** Transient states and the stable state each leads to (Ironic's `target`; stored in status.provisioning.target). */
export const TRANSIENT_TARGETS: Partial<Record<HostState, TransitionTarget>> = {
  registering: 'available',
  inspecting: 'available',
  preparing: 'available',
  provisioning: 'provisioned',
  deprovisioning: 'available',
  'powering-off-before-delete': 'gone',
  deleting: 'gone',
};

/** States that open an operationHistory record on entry and close it on a successful exit. */
export const OPERATION_OF_STATE: Partial<Record<HostState, 'register' | 'inspect' | 'provision' | 'deprovision'>> = {
  registering: 'register',
  inspecting: 'inspect',
  provisioning: 'provision',
  deprovisioning: 'deprovision',
};

/** An edge's destination: one state, or (for error/retry only) the set the outcome must choose from. */
type EdgeTarget = TransitionTarget | readonly HostState[];

const ALL_RETRY_TARGETS: readonly HostState[] = [...new Set(Object.values(RETRY_TARGETS).flat())];

// Each row: event -> destination, with the handler (src/conductor/handlers/<file>) that fires it.
// `delete` is fired by the cross-cutting deletion check (handlers/index.ts) in every state.
export const TRANSITIONS: Record<HostState, Partial<Record<HostEvent, EdgeTarget>>> = {
  registering: {
    registered: 'inspecting', // registering.ts: BMC identified, credentials good
    manage: 'externally-provisioned', // registering.ts: same, with spec.externallyProvisioned
    fail: 'error', // engine, on a registering.ts `failed` outcome (errorType registration)
    delete: 'powering-off-before-delete',
  },
  inspecting: {
    inspected: 'preparing', // inspecting.ts: agent reported the inventory, host powered off
    fail: 'error', // engine, on inspecting.ts `failed` (inspection)
    delete: 'powering-off-before-delete',
  },
  preparing: {
    prepared: 'available', // preparing.ts: nothing (yet) requested in spec
    fail: 'error', // engine, on preparing.ts `failed` (preparation)
    delete: 'powering-off-before-delete',
  },
  available: {
    provision: 'provisioning', // available.ts: spec.image set
    adopt: 'externally-provisioned', // available.ts: spec.externallyProvisioned set
    fail: 'error', // engine, on available.ts `failed` (power-management)
    delete: 'powering-off-before-delete',
  },
  provisioning: {
    provisioned: 'provisioned', // provisioning.ts: image written, boot device set, power per spec.online
    deprovision: 'deprovisioning', // handlers/index.ts: deleted mid-deploy, the disk may hold part of an image
    fail: 'error', // engine, on provisioning.ts `failed` (provisioning)
    delete: 'powering-off-before-delete',
  },
  provisioned: {
    deprovision: 'deprovisioning', // provisioned.ts: spec.image removed or changed
    fail: 'error', // engine, on provisioned.ts `failed` (power-management)
    delete: 'powering-off-before-delete',
  },
  deprovisioning: {
    deprovisioned: 'available', // deprovisioning.ts: cleaned (or cleaning disabled), powered off
    fail: 'error', // engine, on deprovisioning.ts `failed` (deprovisioning)
    delete: 'powering-off-before-delete',
  },
  'externally-provisioned': {
    inspect: 'inspecting', // externally-provisioned.ts: spec.externallyProvisioned cleared
    fail: 'error', // engine, on externally-provisioned.ts `failed` (power-management)
    delete: 'powering-off-before-delete',
  },
  unmanaged: {
    register: 'registering', // unmanaged.ts: spec.bmc was added
    delete: 'deleting', // no BMC: nothing to power off
  },
  error: {
    retry: ALL_RETRY_TARGETS, // error.ts: backoff elapsed (or the credentials/spec changed); see RETRY_TARGETS
    delete: 'powering-off-before-delete',
  },
  'powering-off-before-delete': {
    'powered-off': 'deleting', // powering-off-before-delete.ts: power reads off (or the BMC stayed unreachable)
  },
  deleting: {
    deleted: 'gone', // deleting.ts: agent session ended; the engine removes the row
  },
};

export class IllegalTransition extends Error {
  constructor(
    readonly from: HostState,
    readonly event: HostEvent,
    detail: string,
  ) {
    super(`illegal transition: ${detail}`);
    this.name = 'IllegalTransition';
  }
}

/**
 * The state `event` leads to from `from`. For the one multi-target edge (error --retry-->),
 * `to` must name a member of the allowed set. Throws IllegalTransition for any edge not in
 * TRANSITIONS, or a `to` that the edge does not allow.
 */
export function nextState(from: HostState, event: HostEvent, to?: HostState): TransitionTarget {
  const target = TRANSITIONS[from][event];
  if (target === undefined) {
    throw new IllegalTransition(from, event, `no edge "${event}" from state ${from}`);
  }
  if (typeof target === 'string') {
    if (to !== undefined && to !== target) {
      throw new IllegalTransition(from, event, `"${event}" from ${from} leads to ${target}, not ${to}`);
    }
    return target;
  }
  if (to === undefined || !target.includes(to)) {
    throw new IllegalTransition(from, event, `"${event}" from ${from} must name one of ${target.join(', ')}${to ? `, not ${to}` : ''}`);
  }
  return to;
}

/** Every legal edge, flattened: for tests and documentation. */
export function listEdges(): Array<{ from: HostState; event: HostEvent; to: TransitionTarget }> {
  const edges: Array<{ from: HostState; event: HostEvent; to: TransitionTarget }> = [];
  for (const from of HOST_STATES) {
    for (const [event, target] of Object.entries(TRANSITIONS[from]) as Array<[HostEvent, EdgeTarget]>) {
      for (const to of typeof target === 'string' ? [target] : target) edges.push({ from, event, to });
    }
  }
  return edges;
}
