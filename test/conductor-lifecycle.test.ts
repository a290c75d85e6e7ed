// The conductor end to end: a real SQLite store in a temp dir, encrypted secrets, the fake
// fleet with small delays, and real timers. Assertions wait for states (never for times).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConductor, type Conductor, type ConductorOptions } from '../src/conductor/conductor.js';
import { storeCredentialsResolver } from '../src/conductor/credentials.js';
import { BAD_CREDENTIALS_PASSWORD } from '../src/drivers/fake/fake-scenarios.js';
import { FakeFleet } from '../src/drivers/fake/fake-fleet.js';
import { createDriverRegistry, type DriverRegistry } from '../src/drivers/registry.js';
import { initialHostStatus, type HostSpec, type HostStatus } from '../src/model/host.js';
import { IngotError } from '../src/model/errors.js';
import { openStore } from '../src/store/open-store.js';
import { SecretBox } from '../src/store/secret-box.js';
import type { StoredResource, Store } from '../src/store/store.js';

const IMAGE = { url: 'http://images.test/ubuntu.qcow2', checksum: 'c'.repeat(64), checksumType: 'sha256' as const, format: 'qcow2' as const };
const FAST_DELAYS = { powerMs: [5, 15], inspectMs: [30, 60], deployMs: [60, 120], cleanMs: [30, 60], callMs: [0, 0] } as const;

let dir: string;
let store: Store;
let box: SecretBox;
let conductors: Conductor[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-conductor-'));
  store = await openStore({ database: join(dir, 'ingot.db') });
  box = new SecretBox(randomBytes(32));
  conductors = [];
  await putSecret('bmc', { username: 'admin', password: 'pw' });
});

afterEach(async () => {
  for (const c of conductors) await c.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---- helpers ---------------------------------------------------------------------------------

async function putSecret(name: string, values: Record<string, string>): Promise<void> {
  await store.transaction(async (tx) => {
    const existing = await tx.get({ kind: 'Secret', name });
    if (!existing) {
      const created = await tx.create({ kind: 'Secret', name, spec: { type: 'Opaque' }, status: { keys: Object.keys(values).sort(), version: 1 } });
      await tx.putSecretCiphertext({ uid: created.uid, version: 1, keyId: box.keyId, ciphertext: box.seal(values, created.uid) });
      return;
    }
    const version = Number((existing.status as { version: number }).version) + 1;
    await tx.replace({ ...existing, status: { keys: Object.keys(values).sort(), version } });
    await tx.putSecretCiphertext({ uid: existing.uid, version, keyId: box.keyId, ciphertext: box.seal(values, existing.uid) });
  });
}

function start(fleet: FakeFleet, overrides: Partial<ConductorOptions> = {}, drivers?: DriverRegistry): Conductor {
  const conductor = createConductor({
    store,
    drivers: drivers ?? createDriverRegistry({ fake: fleet }),
    credentials: storeCredentialsResolver(store, box),
    workers: 4,
    leaseTtlMs: 2_000,
    resyncMs: 250,
    pollMs: 20,
    backoff: { baseMs: 20, capMs: 200 },
    handler: { powerPollMs: 5, agentPollMs: 10, idleRecheckMs: 100, agentBootTimeoutMs: 10_000, deletePowerOffAttempts: 3 },
    ...overrides,
  });
  conductors.push(conductor);
  return conductor;
}

async function createHost(name: string, spec: Partial<HostSpec> = {}, address = `fake://${name}`): Promise<StoredResource> {
  const full: HostSpec = { bmc: { address, credentialsName: 'bmc' }, online: false, ...spec };
  return store.create({ kind: 'Host', name, spec: full as Record<string, unknown>, status: initialHostStatus(full) as unknown as Record<string, unknown> });
}

/** Edits a host the way the API does: read, change, CAS write (retried on conflict with the conductor). */
async function edit(name: string, change: (row: StoredResource) => void): Promise<void> {
  for (;;) {
    const row = await store.get({ kind: 'Host', name });
    if (!row) throw new Error(`no host ${name}`);
    change(row);
    try {
      await store.replace(row);
      return;
    } catch (error) {
      if (error instanceof IngotError && error.code === 'INGOT_ERR_CONFLICT') continue;
      throw error;
    }
  }
}

async function status(name: string): Promise<HostStatus | undefined> {
  return (await store.get({ kind: 'Host', name }))?.status as HostStatus | undefined;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined && value !== false) return value as T;
    last = value;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

const stateIs = (name: string, state: string) => waitFor(`${name} ${state}`, async () => (await status(name))?.provisioning.state === state && (await status(name))!);

async function transitions(name: string): Promise<string[]> {
  const events = await store.listEvents({ kind: 'Host', name }, { limit: 1000 });
  return events.filter((e) => e.reason === 'StateChanged').map((e) => `${e.fromState}>${e.toState}`);
}

const TO_AVAILABLE = ['registering>inspecting', 'inspecting>preparing', 'preparing>available'];

// ---- tests -------------------------------------------------------------------------------------

describe('conductor lifecycle', () => {
  it('registers, inspects, provisions, follows spec.online, deprovisions; one event per transition', async () => {
    const fleet = new FakeFleet({ delays: FAST_DELAYS });
    start(fleet);
    await createHost('node-1');
    await conductors[0]!.start();

    // 1. Enrolled: registering -> inspecting -> preparing -> available.
    const ready = await stateIs('node-1', 'available');
    expect(ready.hardware?.cpu?.count).toBeGreaterThan(0);
    expect(ready.goodCredentials).toEqual({ name: 'bmc', version: 1 });
    expect(ready.operationHistory.register).toEqual({ start: expect.any(String), end: expect.any(String) });
    expect(ready.operationHistory.inspect).toEqual({ start: expect.any(String), end: expect.any(String) });
    expect(fleet.machine('node-1').power).toBe('off');

    // 2. spec.online toggles power on the machine.
    await edit('node-1', (r) => (r.spec.online = true));
    await waitFor('powered on', async () => fleet.machine('node-1').power === 'on' && (await status('node-1'))?.poweredOn === true);
    await edit('node-1', (r) => (r.spec.online = false));
    await waitFor('powered off', async () => fleet.machine('node-1').power === 'off' && (await status('node-1'))?.poweredOn === false);

    // 3. Setting spec.image provisions it.
    await edit('node-1', (r) => {
      r.spec.image = IMAGE;
      r.spec.online = true;
    });
    const provisioned = await stateIs('node-1', 'provisioned');
    expect(provisioned.provisioning.image).toEqual(IMAGE);
    expect(provisioned.operationHistory.provision?.end).toBeDefined();
    await waitFor('booted from disk', async () => fleet.machine('node-1').power === 'on' && fleet.machine('node-1').lastBoot?.from === 'hdd');
    expect(fleet.machine('node-1').disk.written?.image.url).toBe(IMAGE.url);

    // 4. Clearing it deprovisions (cleans) back to available.
    await edit('node-1', (r) => {
      delete r.spec.image;
    });
    const cleaned = await stateIs('node-1', 'available');
    expect(cleaned.provisioning.image).toBeUndefined();
    expect(cleaned.operationHistory.deprovision?.end).toBeDefined();
    expect(fleet.machine('node-1').disk.written).toBeUndefined();
    // Once on the way to available (first enrolment), once after the tenant.
    expect(fleet.machine('node-1').disk.cleans.map((c) => c.mode)).toEqual(['metadata', 'metadata']);

    // 5. Exactly one event per transition, in order.
    expect(await transitions('node-1')).toEqual([
      ...TO_AVAILABLE,
      'available>provisioning',
      'provisioning>provisioned',
      'provisioned>deprovisioning',
      'deprovisioning>available',
    ]);
    expect(conductors[0]!.metrics.panic).toBe(0);
  });

  it('deletes hosts from several states after powering them off, and removes the rows', async () => {
    const fleet = new FakeFleet({ delays: { ...FAST_DELAYS, deployMs: [60_000, 60_000] } });
    const c = start(fleet);
    await createHost('del-available', { online: true });
    await createHost('del-provisioning', { image: IMAGE });
    await createHost('fail-inspect-del');
    await store.create({ kind: 'Host', name: 'del-unmanaged', spec: {}, status: initialHostStatus({}) as unknown as Record<string, unknown> });
    await c.start();
    await waitFor('available and powered on', async () => (await status('del-available'))?.poweredOn === true && fleet.machine('del-available').power === 'on');
    await waitFor('deploy running', async () => (await status('del-provisioning'))?.stepState?.agentStarted === true);
    await stateIs('fail-inspect-del', 'error');
    expect((await status('del-unmanaged'))?.provisioning.state).toBe('unmanaged');

    for (const name of ['del-available', 'del-provisioning', 'fail-inspect-del', 'del-unmanaged']) {
      await edit(name, (r) => (r.deletionTimestamp = new Date().toISOString()));
    }
    for (const name of ['del-available', 'del-provisioning', 'fail-inspect-del', 'del-unmanaged']) {
      await waitFor(`${name} removed`, async () => (await store.get({ kind: 'Host', name })) === undefined);
    }
    for (const name of ['del-available', 'del-provisioning', 'fail-inspect-del']) {
      expect(fleet.machine(name).power).toBe('off');
      expect((await transitions(name)).slice(-3)).toEqual([expect.stringMatching(/>powering-off-before-delete$/), 'powering-off-before-delete>deleting', 'deleting>gone']);
    }
    expect((await transitions('del-unmanaged'))).toEqual(['unmanaged>deleting', 'deleting>gone']);
  });

  it('an inspection error recovers after backoff once the hardware is healed', async () => {
    const fleet = new FakeFleet({ delays: FAST_DELAYS });
    start(fleet);
    await createHost('fail-inspect-1');
    await conductors[0]!.start();
    const failed = await stateIs('fail-inspect-1', 'error');
    expect(failed.errorType).toBe('inspection');
    expect(failed.errorMessage).toContain('could not read the hardware inventory');
    // It keeps retrying inspection (and failing) with a growing count.
    await waitFor('retried', async () => ((await status('fail-inspect-1'))?.errorCount ?? 0) >= 2);
    fleet.heal('fail-inspect-1');
    const ok = await stateIs('fail-inspect-1', 'available');
    expect([ok.errorType, ok.errorCount, ok.errorMessage]).toEqual(['', 0, '']);
    const events = await transitions('fail-inspect-1');
    expect(events.slice(0, 2)).toEqual(['registering>inspecting', 'inspecting>error']);
    expect(events.slice(-3)).toEqual(['error>inspecting', 'inspecting>preparing', 'preparing>available']);
  });

  it('bad credentials: registration error, fixed by a new secret version without waiting for the backoff', async () => {
    const fleet = new FakeFleet({ delays: FAST_DELAYS });
    // A one-hour backoff: only the immediate retry on a new secret version can make this pass.
    start(fleet, { backoff: { baseMs: 3_600_000, capMs: 3_600_000 } });
    await createHost('bad-credentials-1');
    await conductors[0]!.start();
    const failed = await stateIs('bad-credentials-1', 'error');
    expect(failed.errorType).toBe('registration');
    expect(failed.errorMessage).toContain('rejected the username or password');
    expect(failed.errorMessage).not.toContain('pw');
    await putSecret('bmc', { username: 'admin', password: BAD_CREDENTIALS_PASSWORD });
    const ok = await stateIs('bad-credentials-1', 'available');
    expect(ok.goodCredentials).toEqual({ name: 'bmc', version: 2 });
  });

  it('a missing credentials secret is a registration error telling how to create it', async () => {
    const fleet = new FakeFleet({ delays: FAST_DELAYS });
    start(fleet, { backoff: { baseMs: 3_600_000, capMs: 3_600_000 } });
    await createHost('node-2', { bmc: { address: 'fake://node-2', credentialsName: 'nope' } });
    await conductors[0]!.start();
    const failed = await stateIs('node-2', 'error');
    expect(failed.errorMessage).toContain('secret nope (spec.bmc.credentialsName) does not exist; create it with `ingot secret create nope');
    await putSecret('nope', { username: 'a', password: 'b' });
    await stateIs('node-2', 'available');
  });

  it('a host whose cleaning fails never reaches available until cleaning succeeds', async () => {
    const fleet = new FakeFleet({ delays: FAST_DELAYS });
    start(fleet);
    // Enrolled as known clean (every clean of this fake host fails), cleaned after its tenant.
    await createHost('fail-clean-1', { image: IMAGE, automatedCleaningMode: 'disabled' });
    await conductors[0]!.start();
    await stateIs('fail-clean-1', 'provisioned');
    await edit('fail-clean-1', (r) => {
      delete r.spec.image;
      r.spec.automatedCleaningMode = 'metadata';
    });
    // Several failed cleanings, each retried from deprovisioning.
    await waitFor('three failed cleanings', async () => {
      const s = await status('fail-clean-1');
      return s?.errorType === 'deprovisioning' && s.errorCount >= 3;
    });
    const before = await transitions('fail-clean-1');
    const afterDeprovision = before.slice(before.indexOf('provisioned>deprovisioning'));
    expect(afterDeprovision.filter((t) => t.endsWith('>available'))).toEqual([]);
    expect(new Set(afterDeprovision)).toEqual(new Set(['provisioned>deprovisioning', 'deprovisioning>error', 'error>deprovisioning']));
    expect(fleet.machine('fail-clean-1').disk.written?.image.url).toBe(IMAGE.url);
    // The admin fixes the disk: the next retry cleans and the host resumes.
    fleet.heal('fail-clean-1');
    await stateIs('fail-clean-1', 'available');
    expect(fleet.machine('fail-clean-1').disk.written).toBeUndefined();
  });

  it('two conductors on one store never act on a host at the same time', async () => {
    const fleet = new FakeFleet({ delays: FAST_DELAYS });
    // Record every BMC call: who made it, on which host, from when to when.
    const calls: Array<{ host: string; by: string; start: number; end: number }> = [];
    const inFlight = new Map<string, Set<string>>();
    let overlaps = 0;
    function tracing(by: string): DriverRegistry {
      const inner = createDriverRegistry({ fake: fleet });
      const wrap = <T extends object>(part: T, host: () => string): T =>
        new Proxy(part, {
          get(target, prop, receiver) {
            const value = Reflect.get(target, prop, receiver);
            if (typeof value !== 'function') return value;
            return async (...args: unknown[]) => {
              const name = host.call(null) || String((args[0] as { hostName?: string })?.hostName);
              const set = inFlight.get(name) ?? new Set();
              if ([...set].some((other) => other !== by)) overlaps++;
              set.add(by);
              inFlight.set(name, set);
              const started = performance.now();
              try {
                return await value.apply(target, args);
              } finally {
                set.delete(by);
                calls.push({ host: name, by, start: started, end: performance.now() });
              }
            };
          },
        });
      return {
        driverFor(address) {
          const d = inner.driverFor(address);
          return { ...d, identify: wrap({ identify: d.identify.bind(d) }, () => '').identify, power: wrap(d.power, () => ''), boot: wrap(d.boot, () => '') };
        },
        agentFor(h) {
          return wrap(inner.agentFor(h), () => h.metadata.name);
        },
        hasAgent: (h) => inner.hasAgent(h),
      };
    }
    const names = ['pair-1', 'pair-2', 'pair-3', 'pair-4'];
    for (const n of names) await createHost(n, { image: IMAGE });
    const a = start(fleet, { holderId: 'conductor-a' }, tracing('a'));
    const b = start(fleet, { holderId: 'conductor-b' }, tracing('b'));
    await Promise.all([a.start(), b.start()]);
    for (const n of names) await stateIs(n, 'provisioned');
    expect(overlaps).toBe(0);
    expect(calls.length).toBeGreaterThan(0);
    for (const n of names) {
      expect(await transitions(n)).toEqual([...TO_AVAILABLE, 'available>provisioning', 'provisioning>provisioned']);
      const ops = Object.values(fleet.machine(n).operations).map((o) => o.kind);
      expect(ops).toEqual(['inspect', 'clean', 'deploy']);
    }
    // Both conductors were running and contending for the same hosts.
    expect(a.metrics['lease-busy'] + b.metrics['lease-busy']).toBeGreaterThan(0);
  });

  it('a conductor that stops without releasing its lease has its host taken over after expiry', async () => {
    const fleet = new FakeFleet({ delays: { ...FAST_DELAYS, deployMs: [400, 400] } });
    const a = start(fleet, { holderId: 'conductor-a', leaseTtlMs: 1_000 });
    const created = await createHost('takeover-1', { image: IMAGE });
    await a.start();
    await waitFor('deploy running', async () => (await status('takeover-1'))?.stepState?.agentStarted === true);
    await a.stop({ releaseLeases: false });
    expect((await store.getLease(`host/${created.uid}`))?.holder).toBe('conductor-a');
    const b = start(fleet, { holderId: 'conductor-b', leaseTtlMs: 1_000 });
    await b.start();
    await stateIs('takeover-1', 'provisioned');
    const lease = await store.getLease(`host/${created.uid}`);
    expect(lease === undefined || lease.holder === 'conductor-b').toBe(true);
    expect(await transitions('takeover-1')).toEqual([...TO_AVAILABLE, 'available>provisioning', 'provisioning>provisioned']);
  });

  it('a restarted conductor (new process state: new fleet object from the same statePath) finishes mid-provisioning work once', async () => {
    const statePath = join(dir, 'fleet.json');
    const fleet1 = new FakeFleet({ delays: { ...FAST_DELAYS, deployMs: [500, 500] }, statePath });
    const a = start(fleet1, { holderId: 'before-restart', leaseTtlMs: 300 });
    await createHost('restart-1', { image: IMAGE, online: true });
    await a.start();
    const mid = await waitFor('deploy running', async () => {
      const s = await status('restart-1');
      return s?.provisioning.state === 'provisioning' && s.stepState?.agentStarted === true && s;
    });
    const operationId = mid.stepState!.operationId;
    await a.stop({ releaseLeases: false });

    const fleet2 = new FakeFleet({ delays: { ...FAST_DELAYS, deployMs: [500, 500] }, statePath });
    start(fleet2, { holderId: 'after-restart', leaseTtlMs: 300 });
    await conductors[1]!.start();
    await stateIs('restart-1', 'provisioned');
    const deploys = Object.values(fleet2.machine('restart-1').operations).filter((o) => o.kind === 'deploy');
    expect(deploys.map((o) => o.id)).toEqual([operationId]);
    expect(await transitions('restart-1')).toEqual([...TO_AVAILABLE, 'available>provisioning', 'provisioning>provisioned']);
  });
});
