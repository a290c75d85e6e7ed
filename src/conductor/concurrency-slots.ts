// Concurrency caps on deploys (provisioning) and cleanings (deprovisioning), held across every
// conductor process that shares the database (DESIGN.md "Limits").
//
// A slot is a fact in the host's own row: `status.stepState.slot` names the kind ('deploy' or
// 'clean'). The count of running deploys is the number of hosts in provisioning whose row says
// so. That makes the slot's lifetime the step's: the engine clears stepState on every state
// change (done, failed, deleted), and a deleted host takes its slot with it, so a slot cannot
// leak when a conductor dies; whoever takes the host over finds the slot in status.
//
// Taking a slot is count-then-write, which two conductors could interleave (both count 249,
// both take the 250th). So the claim runs under a mutex: an in-process promise chain (leases
// are re-entrant for the same holder) plus a short database lease `slots/<kind>` shared by all
// processes; the count is re-read fresh under it and the claim is a CAS write of the host row.
//
// Order: hosts get slots in the order they entered the state (status.operationHistory start,
// then uid). A host whose position among the waiters is beyond the free slots waits; its
// status.waitingFor says how many run, the cap and its position. To keep a long queue cheap, a
// host decides "clearly not my turn" from a fleet view at most `viewMaxAgeMs` old; only a host
// the view says may go takes the mutex and reads the fleet fresh.
import type { HostState, HostStatus } from '../model/host.js';
import type { StoredResource, Store } from '../store/store.js';
import type { Clock } from './clock.js';

export type SlotKind = 'deploy' | 'clean';

/** stepState key holding the slot kind. */
export const SLOT_KEY = 'slot';
/** stepState key of a step started before slots existed (steps.ts STEP.agentBootAt): counted as holding one. */
const AGENT_BOOT_KEY = 'agentBootRequestedAt';

export const DEFAULT_MAX_CONCURRENT_DEPLOYS = 250;
export const DEFAULT_MAX_CONCURRENT_CLEANINGS = 50;

const SLOT_STATE: Record<SlotKind, { state: HostState; op: 'provision' | 'deprovision'; noun: string; plural: string }> = {
  deploy: { state: 'provisioning', op: 'provision', noun: 'deploy', plural: 'deploys' },
  clean: { state: 'deprovisioning', op: 'deprovision', noun: 'cleaning', plural: 'cleanings' },
};

/** Which slot a host in this state needs before its step starts; undefined: none. */
export function slotKindFor(row: StoredResource): SlotKind | undefined {
  const status = row.status as unknown as HostStatus;
  const state = status.provisioning?.state;
  if (state === 'provisioning') return 'deploy';
  if (state === 'deprovisioning') {
    // Cleaning disabled: the step only powers off; it takes no agent and no slot.
    const mode = (row.spec as { automatedCleaningMode?: string }).automatedCleaningMode ?? 'metadata';
    return mode === 'disabled' ? undefined : 'clean';
  }
  return undefined;
}

export function holdsSlot(row: StoredResource, kind: SlotKind): boolean {
  const status = row.status as unknown as HostStatus;
  if (status.provisioning?.state !== SLOT_STATE[kind].state) return false;
  const step = status.stepState ?? {};
  return step[SLOT_KEY] === kind || step[AGENT_BOOT_KEY] !== undefined;
}

export interface SlotDecision {
  admitted: boolean;
  running: number;
  cap: number;
  /** 1-based position among the hosts waiting for this kind of slot. */
  position: number;
}

export function waitingMessage(kind: SlotKind, d: SlotDecision): string {
  const { noun, plural } = SLOT_STATE[kind];
  return `waiting for a ${noun} slot: ${d.running} ${plural} running (cap ${d.cap}); position ${d.position}`;
}

export interface SlotGateOptions {
  store: Store;
  clock: Clock;
  holderId: string;
  caps: Record<SlotKind, number>;
  /** Freshness of the shared fleet view used to tell waiters it is not their turn. Default 1 s. */
  viewMaxAgeMs?: number;
  /** Lifetime of the cross-process claim mutex (a crashed holder frees it after this). Default 10 s. */
  mutexTtlMs?: number;
  /** How often a waiting host looks again. Default 5 s. */
  recheckMs?: number;
}

export interface SlotGate {
  readonly caps: Record<SlotKind, number>;
  readonly recheckMs: number;
  /**
   * Decides whether `row` (a host needing a `kind` slot and not holding one) may take a slot
   * now. When admitted, `claim()` is called under the mutex and must write the slot into the
   * host row (CAS); it returns false when the write lost a race, and the host is not admitted.
   */
  admit(row: StoredResource, kind: SlotKind, claim: () => Promise<boolean>): Promise<SlotDecision | 'busy'>;
}

interface FleetView {
  at: number;
  rows: StoredResource[];
}

const LIST_PAGE = 500;

export function createSlotGate(opts: SlotGateOptions): SlotGate {
  const { store, clock, holderId, caps } = opts;
  const viewMaxAgeMs = opts.viewMaxAgeMs ?? 1_000;
  const mutexTtlMs = opts.mutexTtlMs ?? 10_000;
  for (const [kind, cap] of Object.entries(caps)) {
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`the ${kind} concurrency cap must be a positive integer, got ${cap}`);
  }
  let view: FleetView | undefined;
  let viewLoading: Promise<FleetView> | undefined;
  const local: Record<SlotKind, Promise<unknown>> = { deploy: Promise.resolve(), clean: Promise.resolve() };

  async function listHosts(): Promise<StoredResource[]> {
    const rows: StoredResource[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.list({ kind: 'Host', limit: LIST_PAGE, ...(cursor ? { continue: cursor } : {}) });
      rows.push(...page.items);
      cursor = page.continue;
    } while (cursor);
    return rows;
  }

  async function freshView(): Promise<FleetView> {
    viewLoading ??= listHosts()
      .then((rows) => (view = { at: clock.now(), rows }))
      .finally(() => {
        viewLoading = undefined;
      });
    return viewLoading;
  }

  async function cachedView(): Promise<FleetView> {
    if (view && clock.now() - view.at <= viewMaxAgeMs) return view;
    return freshView();
  }

  function decide(rows: StoredResource[], row: StoredResource, kind: SlotKind): SlotDecision {
    const { state, op } = SLOT_STATE[kind];
    let running = 0;
    const waiting: Array<{ uid: string; start: string }> = [];
    for (const r of rows) {
      if (r.uid === row.uid) continue;
      const status = r.status as unknown as HostStatus;
      if (status.provisioning?.state !== state || slotKindFor(r) !== kind) continue;
      if (holdsSlot(r, kind)) running += 1;
      else if (!r.deletionTimestamp) waiting.push({ uid: r.uid, start: startOf(r, op) });
    }
    const mine = startOf(row, op);
    const ahead = waiting.filter((w) => w.start < mine || (w.start === mine && w.uid < row.uid)).length;
    const cap = caps[kind];
    return { admitted: running + ahead < cap, running, cap, position: ahead + 1 };
  }

  return {
    caps,
    recheckMs: opts.recheckMs ?? 5_000,
    async admit(row, kind, claim) {
      const first = decide((await cachedView()).rows, row, kind);
      if (!first.admitted) return first;
      // Serialize claims in this process, then across processes.
      const run = local[kind].then(async (): Promise<SlotDecision | 'busy'> => {
        const mutex = `slots/${kind}`;
        if (!(await store.acquireLease(mutex, holderId, `${kind} slot claim`, mutexTtlMs, clock.now()))) return 'busy';
        try {
          // Listed after the mutex was taken, so every earlier claim is in it.
          const rows = await listHosts();
          view = { at: clock.now(), rows };
          const fresh = decide(rows, row, kind);
          if (!fresh.admitted) return fresh;
          if (!(await claim())) return 'busy';
          // The view must show this claim to the next decision in this process.
          view = undefined;
          return fresh;
        } finally {
          await store.releaseLease(mutex, holderId);
        }
      });
      local[kind] = run.catch(() => undefined);
      return run;
    },
  };
}

function startOf(row: StoredResource, op: 'provision' | 'deprovision'): string {
  const status = row.status as unknown as HostStatus;
  // A host not yet worked on in this state has no start: it queues behind those that have.
  return status.operationHistory?.[op]?.start ?? '\uffff';
}
