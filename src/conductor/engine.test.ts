// The engine against a real SQLite store: what each outcome writes, in one transaction.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDriverRegistry } from '../drivers/registry.js';
import { FakeFleet } from '../drivers/fake/fake-fleet.js';
import { initialHostStatus, type HostSpec, type HostStatus } from '../model/host.js';
import { openStore } from '../store/open-store.js';
import type { Store, StoredResource } from '../store/store.js';
import { createManualClock } from './clock.js';
import { createSecretCredentialsResolver } from './credentials.js';
import { applyOutcome, reconcileHost, type EngineDeps } from './engine.js';
import { DEFAULT_HANDLER_CONFIG } from './handlers/types.js';
import { toHost } from './host-record.js';
import type { Outcome } from './outcome.js';

let store: Store;
let deps: EngineDeps;
const clock = createManualClock();

beforeEach(async () => {
  store = await openStore({ database: ':memory:' });
  const fleet = new FakeFleet({ now: () => clock.now(), random: () => 0 });
  deps = {
    store,
    drivers: createDriverRegistry({ fake: fleet }),
    credentials: createSecretCredentialsResolver(async () => ({ values: { username: 'u', password: 'p' }, version: 1, uid: 's' })),
    clock,
    random: () => 0,
    backoff: { baseMs: 1_000, capMs: 60_000 },
    config: DEFAULT_HANDLER_CONFIG,
    log: { info() {}, warn() {}, error() {} },
  };
});
afterEach(async () => store.close());

async function hostRow(state: HostStatus['provisioning']['state'], patch: Partial<HostStatus> = {}, spec: HostSpec = { bmc: { address: 'fake://n1', credentialsName: 'bmc' } }) {
  return store.create({
    kind: 'Host',
    name: 'n1',
    spec: spec as Record<string, unknown>,
    status: { ...initialHostStatus(spec), provisioning: { state }, ...patch } as unknown as Record<string, unknown>,
  });
}

/** A store method bound to the real store (it uses #private fields, which a Proxy receiver lacks). */
function bound(target: Store, prop: string | symbol): unknown {
  const value = Reflect.get(target, prop, target);
  return typeof value === 'function' ? value.bind(target) : value;
}

async function apply(row: StoredResource, outcome: Outcome) {
  return applyOutcome(deps, row, toHost(row), outcome);
}

const events = () => store.listEvents({ kind: 'Host', name: 'n1' });
const current = async () => (await store.get({ kind: 'Host', name: 'n1' }))!;
const statusOf = async () => (await current()).status as unknown as HostStatus;

describe('applyOutcome', () => {
  it('advance: new state, target, history and one StateChanged event, errors reset', async () => {
    const row = await hostRow('inspecting', { errorCount: 2, errorType: 'inspection', errorMessage: 'x', operationHistory: { inspect: { start: 'then' } }, stepState: { operationId: 'op' } });
    const result = await apply(row, { kind: 'advance', event: 'inspected', message: 'done' });
    expect(result).toMatchObject({ outcome: 'advance', state: 'preparing', requeueAfterMs: 0, wroteVersion: 2 });
    const s = await statusOf();
    expect(s.provisioning).toEqual({ state: 'preparing', target: 'available' });
    expect([s.errorCount, s.errorType, s.errorMessage, s.stepState]).toEqual([0, '', '', undefined]);
    expect(s.operationHistory.inspect).toEqual({ start: 'then', end: new Date(clock.now()).toISOString() });
    expect((await events()).map((e) => [e.type, e.reason, e.fromState, e.toState, e.message])).toEqual([['Normal', 'StateChanged', 'inspecting', 'preparing', 'done']]);
  });

  it('advance into an operation state opens its history record', async () => {
    const row = await hostRow('available', {}, { bmc: { address: 'fake://n1', credentialsName: 'bmc' }, image: { url: 'http://x/i', checksum: 'a'.repeat(64) } });
    await apply(row, { kind: 'advance', event: 'provision' });
    expect((await statusOf()).operationHistory.provision).toEqual({ start: new Date(clock.now()).toISOString() });
  });

  it('a conflict (host edited meanwhile) drops the whole result: no state change, no event', async () => {
    const row = await hostRow('inspecting');
    await store.replace({ ...row, labels: { edited: 'yes' } });
    const result = await apply(row, { kind: 'advance', event: 'inspected' });
    expect(result).toMatchObject({ outcome: 'conflict', requeueAfterMs: 0 });
    expect((await statusOf()).provisioning.state).toBe('inspecting');
    expect(await events()).toEqual([]);
  });

  it('the event and the state commit together: a failing event write rolls the state back', async () => {
    const row = await hostRow('inspecting');
    const failingEvents: Store = new Proxy(store, {
      get(target, prop) {
        if (prop === 'transaction') {
          return (fn: (tx: Store) => Promise<unknown>) =>
            target.transaction((tx) => fn(new Proxy(tx, { get: (t, p) => (p === 'appendEvent' ? async () => { throw new Error('disk full'); } : bound(t, p)) })));
        }
        return bound(target, prop);
      },
    });
    await expect(applyOutcome({ ...deps, store: failingEvents }, row, toHost(row), { kind: 'advance', event: 'inspected' })).rejects.toThrow('disk full');
    expect((await current()).resourceVersion).toBe(1);
    expect((await statusOf()).provisioning.state).toBe('inspecting');
  });

  it('failed: error state with errorType, count, backoff and a Warning event', async () => {
    const row = await hostRow('inspecting', { errorCount: 1, stepState: { operationId: 'op' } });
    const result = await apply(row, { kind: 'failed', errorType: 'inspection', message: 'no inventory' });
    expect(result).toMatchObject({ outcome: 'failed', state: 'error', requeueAfterMs: 2_000 });
    const s = await statusOf();
    expect([s.provisioning.state, s.errorType, s.errorMessage, s.errorCount]).toEqual(['error', 'inspection', 'no inventory', 2]);
    expect(s.nextAttemptAt).toBe(new Date(clock.now() + 2_000).toISOString());
    expect(s.stepState).toMatchObject({ resumeState: 'inspecting', failedSpecHash: expect.any(String) });
    expect(s.stepState?.operationId).toBeUndefined();
    expect((await events()).map((e) => [e.type, e.fromState, e.toState, e.message])).toEqual([['Warning', 'inspecting', 'error', 'inspection error: no inventory']]);
  });

  it('retry: count and waitingFor saved, backoff requeue, no state change and no event', async () => {
    const row = await hostRow('available');
    const result = await apply(row, { kind: 'retry', cause: 'BMC unreachable: timeout' });
    expect(result).toMatchObject({ outcome: 'retry', requeueAfterMs: 1_000 });
    const s = await statusOf();
    expect([s.provisioning.state, s.errorCount, s.waitingFor]).toEqual(['available', 1, 'BMC unreachable: timeout']);
    expect(await events()).toEqual([]);
  });

  it('retry from error keeps the count, so the next failure backs off further', async () => {
    const row = await hostRow('error', { errorType: 'deprovisioning', errorCount: 3, errorMessage: 'clean failed' });
    await apply(row, { kind: 'advance', event: 'retry', to: 'deprovisioning' });
    const s = await statusOf();
    expect([s.provisioning.state, s.errorCount, s.errorType]).toEqual(['deprovisioning', 3, 'deprovisioning']);
  });

  it('wait writes nothing', async () => {
    const row = await hostRow('available');
    expect(await apply(row, { kind: 'wait', afterMs: 1234 })).toMatchObject({ outcome: 'wait', requeueAfterMs: 1234 });
    expect((await current()).resourceVersion).toBe(1);
  });

  it('an illegal edge is refused: terminal, nothing written', async () => {
    const row = await hostRow('available');
    expect(await apply(row, { kind: 'advance', event: 'inspected' })).toMatchObject({ outcome: 'terminal' });
    expect((await current()).resourceVersion).toBe(1);
    expect(await events()).toEqual([]);
  });

  it('deleted: removes the row and records the last event', async () => {
    const row = await hostRow('deleting');
    expect(await apply(row, { kind: 'advance', event: 'deleted' })).toMatchObject({ outcome: 'gone' });
    expect(await store.get({ kind: 'Host', name: 'n1' })).toBeUndefined();
    expect((await events()).map((e) => `${e.fromState}>${e.toState}`)).toEqual(['deleting>gone']);
  });
});

describe('reconcileHost', () => {
  it('a handler that throws something unexpected is recovered as a counted retry', async () => {
    await hostRow('available', {}, { bmc: { address: 'fake://n1', credentialsName: 'bmc' }, online: true });
    const broken: EngineDeps = {
      ...deps,
      drivers: {
        driverFor: () => {
          throw new TypeError('bug');
        },
        agentFor: deps.drivers.agentFor,
      },
    };
    const row = await current();
    const result = await reconcileHost(broken, row.uid);
    expect(result).toMatchObject({ outcome: 'panic', requeueAfterMs: 1_000 });
    const s = await statusOf();
    expect(s.errorCount).toBe(1);
    expect(s.waitingFor).toContain('internal error in the available step');
  });

  it('a host that is gone is reported as gone', async () => {
    expect(await reconcileHost(deps, 'no-such-uid')).toEqual({ outcome: 'gone' });
  });
});
