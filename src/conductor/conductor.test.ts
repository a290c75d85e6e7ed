// createConductor on a real (in-memory SQLite) store with a manual clock shared with the fake
// fleet: time moves only when the test says so, so requeue-after and backoff are exercised
// without sleeping.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDriverRegistry } from '../drivers/registry.js';
import { FakeFleet } from '../drivers/fake/fake-fleet.js';
import { initialHostStatus, type HostSpec, type HostStatus } from '../model/host.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { createManualClock, type ManualClock } from './clock.js';
import { createConductor, type Conductor, type ConductorOptions } from './conductor.js';
import { createSecretCredentialsResolver } from './credentials.js';

let store: Store;
let clock: ManualClock;
let fleet: FakeFleet;
let conductor: Conductor | undefined;

beforeEach(async () => {
  store = await openStore({ database: ':memory:' });
  clock = createManualClock();
  fleet = new FakeFleet({ now: () => clock.now(), random: () => 0 });
});
afterEach(async () => {
  await conductor?.stop();
  await store.close();
});

function make(overrides: Partial<ConductorOptions> = {}): Conductor {
  conductor = createConductor({
    store,
    drivers: createDriverRegistry({ fake: fleet }),
    credentials: createSecretCredentialsResolver(async () => ({ values: { username: 'u', password: 'p' }, version: 1, uid: 's' })),
    clock,
    random: () => 0,
    holderId: 'test',
    ...overrides,
  });
  return conductor;
}

async function create(name: string, spec: Partial<HostSpec> = {}) {
  const full: HostSpec = { bmc: { address: `fake://${name}`, credentialsName: 'bmc' }, ...spec };
  return store.create({ kind: 'Host', name, spec: full as Record<string, unknown>, status: initialHostStatus(full) as unknown as Record<string, unknown> });
}

const stateOf = async (name: string) => ((await store.get({ kind: 'Host', name }))?.status as unknown as HostStatus | undefined)?.provisioning.state;

/** Lets the conductor work, moving the clock by `stepMs` whenever it has nothing to do now. */
async function runUntil(done: () => Promise<boolean>, stepMs: number, maxSteps = 2_000): Promise<number> {
  for (let i = 0; i < maxSteps; i++) {
    await new Promise((r) => setImmediate(r));
    await conductor!.idle();
    if (await done()) return i;
    clock.advance(stepMs);
  }
  throw new Error('did not finish');
}

describe('createConductor', () => {
  it.each([
    ['workers', { workers: 0 }],
    ['leaseTtlMs', { leaseTtlMs: -1 }],
    ['pollMs', { pollMs: Number.NaN }],
    ['baseMs', { backoff: { baseMs: 0 } }],
  ] as const)('refuses a bad %s', (name, options) => {
    expect(() => make(options as Partial<ConductorOptions>)).toThrow(new RegExp(`${name} must be a positive number`));
    conductor = undefined;
  });

  it('pre-sets every metric to zero', () => {
    expect(Object.values(make().metrics).every((v) => v === 0)).toBe(true);
  });

  it('drives a host to available on the manual clock, with the default (production) timings', async () => {
    const c = make();
    await create('node-1');
    await c.start();
    await runUntil(async () => (await stateOf('node-1')) === 'available', 1_000);
    expect(c.metrics.advance).toBe(3);
    expect(c.metrics.panic + c.metrics['store-error'] + c.metrics.terminal).toBe(0);
  });

  it('backs off on the persisted count: an unreachable BMC is retried after 1, 2, 4… minutes', async () => {
    const c = make();
    fleet.failNext('node-1', 'identify', 'timeout', 3);
    await create('node-1');
    await c.start();
    await runUntil(async () => c.metrics.retry === 1, 1_000);
    const t0 = clock.now();
    // Nothing happens before the first minute is over…
    clock.advance(59_000);
    await conductor!.idle();
    expect(c.metrics.retry).toBe(1);
    // …the second retry comes at 1 min, the third 2 min later, then registration succeeds.
    await runUntil(async () => c.metrics.retry === 3, 1_000);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(60_000 + 120_000 - 1_000);
    await runUntil(async () => (await stateOf('node-1')) === 'available', 1_000);
    const s = (await store.get({ kind: 'Host', name: 'node-1' }))!.status as unknown as HostStatus;
    expect([s.errorCount, s.waitingFor]).toEqual([0, undefined]);
  });

  it('stop releases the leases it holds', async () => {
    const c = make();
    const row = await create('node-1', { online: true });
    await c.start();
    await runUntil(async () => (await store.getLease(`host/${row.uid}`)) !== undefined, 1_000);
    await c.stop();
    expect(await store.getLease(`host/${row.uid}`)).toBeUndefined();
  });
});
