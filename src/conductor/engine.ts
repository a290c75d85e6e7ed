// The engine: runs one reconcile of one host and applies its outcome to the store.
//
// Level-based (controller-runtime's reconcile contract): it is given only a uid, re-reads the
// host, and never trusts what caused the call. Every write is a compare-and-swap on the
// resourceVersion it read; state + event go in ONE transaction, so a transition is written
// exactly once: if someone edited the host meanwhile (or another conductor wrote first), the
// CAS fails, the whole result is dropped, and the host is reconciled again from what is now
// stored. Steps are idempotent, so repeating one is harmless.
import { randomUUID } from 'node:crypto';
import type { AgentPort } from './agent-port.js';
import type { BmcDriver } from '../drivers/driver.js';
import { BmcRefused } from '../drivers/driver.js';
import { parseBmcAddress, type BmcAddress } from '../model/bmc-address.js';
import { IngotError } from '../model/errors.js';
import type { Host, HostState, HostStatus } from '../model/host.js';
import type { NewEvent, StoredResource, Store } from '../store/store.js';
import { nextDelay, type BackoffOptions } from './backoff.js';
import type { Clock } from './clock.js';
import type { ConfigDriveSource } from './config-drive-source.js';
import type { CredentialsResolver, SecretUseListener } from './credentials.js';
import { FAILED_SPEC_HASH, RESUME_STATE } from './handlers/error.js';
import { crossCutting, runHandler } from './handlers/index.js';
import { holdsSlot, SLOT_KEY, slotKindFor, waitingMessage, type SlotGate } from './concurrency-slots.js';
import type { HandlerConfig, HandlerContext, HandlerLog, ImageProxy } from './handlers/types.js';
import { toHost, withStatus } from './host-record.js';
import { queueAction, type Outcome, type OutcomeKind } from './outcome.js';
import { specHash } from './spec-hash.js';
import { OPERATION_OF_STATE, TRANSIENT_TARGETS, nextState, type HostEvent } from './transitions.js';

/** stepState key: the spec digest when a `retry` backoff started (a changed spec skips the wait). */
export const RETRY_SPEC_HASH = 'retrySpecHash';

export interface EngineDeps {
  store: Store;
  /** `hasAgent` absent means every host has one (agentFor decides). */
  drivers: { driverFor(address: BmcAddress): BmcDriver; agentFor(host: Host): AgentPort; hasAgent?(host: Host): boolean };
  credentials: CredentialsResolver;
  clock: Clock;
  random: () => number;
  backoff: Required<BackoffOptions>;
  config: HandlerConfig;
  log: HandlerLog;
  /** The caching image proxy (images.downloadSource: local). */
  images?: ImageProxy;
  /** Concurrency caps on deploys and cleanings (concurrency-slots.ts); absent: no caps. */
  slots?: SlotGate;
  /** Supplies config drives for hosts bound elsewhere (claims); absent: spec.userDataName only. */
  configDriveSource?: ConfigDriveSource;
  /** Where uses of secrets a ConfigDriveSource reports go (the audit trail). */
  reportSecretUse?: SecretUseListener;
}

export interface ReconcileResult {
  outcome: OutcomeKind | 'conflict' | 'gone' | 'panic';
  requeueAfterMs?: number;
  /** resourceVersion this reconcile wrote, so the change feed can skip our own write. */
  wroteVersion?: number;
  state?: HostState;
}

/** Reads the host by uid, runs its handler, applies the outcome. Throws only on store failures. */
export async function reconcileHost(deps: EngineDeps, uid: string): Promise<ReconcileResult> {
  const row = await deps.store.getByUid(uid);
  if (!row || row.kind !== 'Host') return { outcome: 'gone' };
  const host = toHost(row);
  const ctx = handlerContext(deps, host);
  const retryHash = host.status.stepState?.[RETRY_SPEC_HASH];
  const specChanged = typeof retryHash === 'string' && retryHash !== specHash(host.spec);
  if (deps.slots) {
    const gated = await slotGate(deps, deps.slots, row, host, crossCutting(ctx, specChanged) !== undefined);
    if (gated) return gated;
  }
  let outcome: Outcome;
  try {
    outcome = await runHandler(ctx, specChanged);
  } catch (error) {
    // A handler bug or an unexpected library error: recover it as a retry (logged, counted,
    // backed off) rather than crash the worker or spin on it.
    deps.log.error('handler threw', { host: row.name, state: host.status.provisioning.state, error: String(error) });
    const fresh = toHost(row);
    const applied = await applyOutcome(deps, row, fresh, { kind: 'retry', cause: `internal error in the ${fresh.status.provisioning.state} step; see the conductor log` });
    return { ...applied, outcome: applied.outcome === 'retry' ? 'panic' : applied.outcome };
  }
  return applyOutcome(deps, row, host, outcome);
}

/**
 * Before a deploy or a clean starts, the host takes a slot (concurrency-slots.ts); until it has
 * one, its step does not run and status.waitingFor says why. Undefined: go on to the handler
 * (no slot needed, slot held, or a cross-cutting check such as deletion comes first).
 */
async function slotGate(deps: EngineDeps, slots: SlotGate, row: StoredResource, host: Host, crossCuttingApplies: boolean): Promise<ReconcileResult | undefined> {
  const kind = slotKindFor(row);
  if (!kind || holdsSlot(row, kind) || crossCuttingApplies) return undefined;
  const from = host.status.provisioning.state;
  const status = host.status;
  const op = OPERATION_OF_STATE[from];
  const nowIso = new Date(deps.clock.now()).toISOString();
  if (op && !status.operationHistory[op]?.start) status.operationHistory[op] = { start: nowIso };
  let claimed: ReconcileResult | undefined;
  const decision = await slots.admit(row, kind, async () => {
    const next: HostStatus = structuredClone(status);
    next.stepState = { ...next.stepState, [SLOT_KEY]: kind };
    delete next.waitingFor;
    const noun = kind === 'deploy' ? 'deploy' : 'cleaning';
    const events: NewEvent[] = [
      { kind: 'Host', project: row.project, name: row.name, uid: row.uid, type: 'Normal', reason: kind === 'deploy' ? 'DeploySlotTaken' : 'CleaningSlotTaken', message: `took a ${noun} slot (cap ${slots.caps[kind]})` },
    ];
    claimed = await write(deps, row, next, events, { outcome: 'save', state: from, requeueAfterMs: 0 });
    return claimed.outcome === 'save';
  });
  if (decision === 'busy') return claimed ?? { outcome: 'wait', state: from, requeueAfterMs: Math.min(slots.recheckMs, 250) };
  if (decision.admitted) return claimed!;
  const message = waitingMessage(kind, decision);
  if (status.waitingFor === message) return { outcome: 'wait', state: from, requeueAfterMs: slots.recheckMs };
  status.waitingFor = message;
  return write(deps, row, status, [], { outcome: 'save', state: from, requeueAfterMs: slots.recheckMs });
}

export function handlerContext(
  deps: Pick<EngineDeps, 'drivers' | 'credentials' | 'clock' | 'config' | 'log' | 'images' | 'configDriveSource' | 'reportSecretUse'>,
  host: Host,
): HandlerContext {
  return {
    host,
    ...(deps.images ? { images: deps.images } : {}),
    ...(deps.configDriveSource ? { configDriveSource: deps.configDriveSource } : {}),
    ...(deps.reportSecretUse ? { reportSecretUse: deps.reportSecretUse } : {}),
    agent: lazyAgent(deps, host),
    credentials: deps.credentials,
    clock: deps.clock,
    config: deps.config,
    log: deps.log,
    hasAgent: () => deps.drivers.hasAgent?.(host) ?? true,
    newOperationId: () => randomUUID(),
    async bmc() {
      const bmc = host.spec.bmc;
      if (!bmc) throw new BmcRefused(`host ${host.metadata.name} has no spec.bmc`);
      let address: BmcAddress;
      try {
        address = parseBmcAddress(bmc.address);
      } catch (error) {
        throw new BmcRefused(`spec.bmc.address: ${(error as Error).message}`);
      }
      const driver = deps.drivers.driverFor(address);
      const resolved = await deps.credentials.resolve(host);
      const target = {
        hostName: host.metadata.name,
        address,
        credentials: resolved.credentials,
        credentialsName: resolved.secretName,
        tls: { verify: !bmc.disableCertificateVerification, ...(resolved.caBundle ? { caBundle: resolved.caBundle } : {}) },
      };
      driver.validate(target);
      return { driver, target, resolved };
    },
  };
}

/**
 * The host's agent port, looked up when first used: hosts without a BMC (unmanaged) have none,
 * and a lookup failure (no agent configured) is the hardware-said-no kind, not a crash.
 */
function lazyAgent(deps: Pick<EngineDeps, 'drivers'>, host: Host): AgentPort {
  const port = (): AgentPort => {
    try {
      return deps.drivers.agentFor(host);
    } catch (error) {
      if (error instanceof BmcRefused) throw error;
      throw new BmcRefused(`no agent for host ${host.metadata.name}: ${(error as Error).message}`, { cause: error });
    }
  };
  return {
    start: (h, id, request) => port().start(h, id, request),
    poll: (h, id) => port().poll(h, id),
    finish: (h) => port().finish(h),
    // A getter, so that "this port cannot make boot media" (the fake agent) stays visible as
    // an absent method; a host without any agent has none either.
    get prepareBoot() {
      let real: AgentPort;
      try {
        real = port();
      } catch {
        return undefined;
      }
      return real.prepareBoot ? (h: Host) => real.prepareBoot!(h) : undefined;
    },
  };
}

/** Writes what `outcome` says about `host` (the handler's edited copy of `row`). */
export async function applyOutcome(deps: EngineDeps, row: StoredResource, host: Host, outcome: Outcome): Promise<ReconcileResult> {
  const { store, clock } = deps;
  const from = host.status.provisioning.state;
  const status = host.status;
  const now = clock.now();
  const nowIso = new Date(now).toISOString();
  // The delay failed/retry requeue after: backoff for the count this failure makes.
  const backoffMs = outcome.kind === 'failed' || outcome.kind === 'retry' ? nextDelay(status.errorCount + 1, deps.random, deps.backoff) : 0;
  const action = queueAction(outcome, backoffMs);
  const base = { outcome: outcome.kind, state: from } as const;

  // An operation's history opens the first time its state is worked on (covers hosts created
  // straight into registering, which no transition entered).
  const op = OPERATION_OF_STATE[from];
  if (op && !status.operationHistory[op]?.start && action.persist) status.operationHistory[op] = { start: nowIso };
  const target = TRANSIENT_TARGETS[from];
  if (target && target !== 'gone' && !status.provisioning.target && action.persist) status.provisioning.target = target;

  const events: NewEvent[] = [];
  const event = (e: Omit<NewEvent, 'kind' | 'project' | 'name' | 'uid'>) =>
    events.push({ kind: 'Host', project: row.project, name: row.name, uid: row.uid, ...e });

  switch (outcome.kind) {
    case 'wait':
      return { ...base, requeueAfterMs: action.requeueAfterMs };
    case 'terminal':
      deps.log.error('reconcile gave up', { host: row.name, state: from, cause: outcome.cause });
      return { ...base };
    case 'save': {
      delete status.nextAttemptAt;
      delete status.waitingFor;
      for (const note of outcome.events ?? []) event(note);
      return write(deps, row, status, events, { ...base, requeueAfterMs: action.requeueAfterMs });
    }
    case 'retry': {
      status.errorCount += 1;
      const delay = backoffMs;
      status.waitingFor = outcome.cause;
      status.nextAttemptAt = new Date(now + delay).toISOString();
      status.stepState = { ...status.stepState, [RETRY_SPEC_HASH]: specHash(host.spec) };
      return write(deps, row, status, events, { ...base, requeueAfterMs: action.requeueAfterMs });
    }
    case 'failed': {
      let to: HostState;
      try {
        to = nextState(from, 'fail') as HostState;
      } catch (error) {
        deps.log.error('handler failed from a state without a fail edge', { host: row.name, state: from, error: String(error) });
        return { ...base, outcome: 'terminal' };
      }
      status.errorCount += 1;
      const delay = backoffMs;
      status.provisioning.state = to;
      delete status.provisioning.target;
      status.errorType = outcome.errorType;
      status.errorMessage = outcome.message;
      status.nextAttemptAt = new Date(now + delay).toISOString();
      delete status.progress;
      delete status.waitingFor;
      status.stepState = { ...outcome.remember, [RESUME_STATE]: from, [FAILED_SPEC_HASH]: specHash(host.spec) };
      event({ type: 'Warning', reason: 'StateChanged', fromState: from, toState: to, message: `${outcome.errorType} error: ${outcome.message}` });
      return write(deps, row, status, events, { ...base, state: to, requeueAfterMs: action.requeueAfterMs });
    }
    case 'advance': {
      let to;
      try {
        to = nextState(from, outcome.event, outcome.to);
      } catch (error) {
        deps.log.error('handler asked for an illegal transition', { host: row.name, state: from, error: String(error) });
        return { ...base, outcome: 'terminal' };
      }
      const message = outcome.message ?? `${outcome.event}`;
      if (to === 'gone') {
        try {
          await store.transaction(async (tx) => {
            await tx.remove({ kind: 'Host', project: row.project, name: row.name }, row.resourceVersion);
            await tx.appendEvent({ kind: 'Host', project: row.project, name: row.name, uid: row.uid, type: 'Normal', reason: 'StateChanged', fromState: from, toState: 'gone', message });
          });
        } catch (error) {
          if (isConflict(error)) return { ...base, outcome: 'conflict', requeueAfterMs: 0 };
          throw error;
        }
        return { ...base, outcome: 'gone' };
      }
      applyTransition(status, from, to, outcome.event, nowIso);
      if (outcome.carry) status.stepState = { ...outcome.carry };
      event({ type: 'Normal', reason: 'StateChanged', fromState: from, toState: to, message });
      for (const note of outcome.events ?? []) event(note);
      return write(deps, row, status, events, { ...base, state: to, requeueAfterMs: action.requeueAfterMs });
    }
  }
}

/** The status changes every transition makes, besides the state itself. */
function applyTransition(status: HostStatus, from: HostState, to: HostState, event: HostEvent, nowIso: string): void {
  status.provisioning.state = to;
  const target = TRANSIENT_TARGETS[to];
  if (target && target !== 'gone') status.provisioning.target = target;
  else delete status.provisioning.target;
  delete status.stepState;
  delete status.progress;
  delete status.waitingFor;
  delete status.nextAttemptAt;
  // A retry keeps the error and its count, so a step that fails again backs off further; any
  // other edge means the step succeeded (or was abandoned for deletion).
  if (event !== 'retry') {
    status.errorCount = 0;
    status.errorType = '';
    status.errorMessage = '';
  }
  const leaving = OPERATION_OF_STATE[from];
  if (leaving && event !== 'delete' && event !== 'retry' && event !== 'fail') {
    status.operationHistory[leaving] = { ...status.operationHistory[leaving], end: nowIso };
  }
  const entering = OPERATION_OF_STATE[to];
  if (entering) status.operationHistory[entering] = { start: nowIso };
}

async function write(deps: EngineDeps, row: StoredResource, status: HostStatus, events: NewEvent[], result: ReconcileResult): Promise<ReconcileResult> {
  try {
    const written = await deps.store.transaction(async (tx) => {
      const next = await tx.replace(withStatus(row, status));
      for (const e of events) await tx.appendEvent(e);
      return next;
    });
    return { ...result, wroteVersion: written.resourceVersion };
  } catch (error) {
    if (isConflict(error)) return { ...result, outcome: 'conflict', requeueAfterMs: 0 };
    throw error;
  }
}

function isConflict(error: unknown): boolean {
  return error instanceof IngotError && error.code === 'INGOT_ERR_CONFLICT';
}
