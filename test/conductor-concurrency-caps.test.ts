// Concurrency caps on deploys and cleanings (concurrency-slots.ts) with the fake fleet: a real
// SQLite store, real timers, small delays. Assertions look at the fake machines' operation
// timelines and at the host rows, never at times.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConductor, type Conductor, type ConductorOptions } from '../src/conductor/conductor.js';
import { storeCredentialsResolver } from '../src/conductor/credentials.js';
import { FakeFleet } from '../src/drivers/fake/fake-fleet.js';
import { createDriverRegistry } from '../src/drivers/registry.js';
import { initialHostStatus, type HostSpec, type HostStatus } from '../src/model/host.js';
import { IngotError } from '../src/model/errors.js';
import { openStore } from '../src/store/open-store.js';
import { SecretBox } from '../src/store/secret-box.js';
import type { StoredResource, Store } from '../src/store/store.js';

const IMAGE = { url: 'http://images.test/ubuntu.qcow2', checksum: 'c'.repeat(64), checksumType: 'sha256' as const, format: 'qcow2' as const };
// Deploys and cleanings last long enough that the test puts every host into the operation
// before the first ones finish, even on a loaded machine: otherwise nobody has to wait.
const DELAYS = { powerMs: [5, 15], inspectMs: [20, 40], deployMs: [1000, 1400], cleanMs: [800, 1200], callMs: [0, 0] } as const;
const NAMES = ['cap-1', 'cap-2', 'cap-3', 'cap-4', 'cap-5'];

let dir: string;
let store: Store;
let box: SecretBox;
let conductors: Conductor[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-caps-'));
  store = await openStore({ database: join(dir, 'ingot.db') });
  box = new SecretBox(randomBytes(32));
  conductors = [];
  const created = await store.create({ kind: 'Secret', name: 'bmc', spec: { type: 'Opaque' }, status: { keys: ['password', 'username'], version: 1 } });
  await store.putSecretCiphertext({ uid: created.uid, version: 1, keyId: box.keyId, ciphertext: box.seal({ username: 'admin', password: 'pw' }, created.uid) });
});

afterEach(async () => {
  for (const c of conductors) await c.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function start(fleet: FakeFleet, overrides: Partial<ConductorOptions>): Conductor {
  const conductor = createConductor({
    store,
    drivers: createDriverRegistry({ fake: fleet }),
    credentials: storeCredentialsResolver(store, box),
    workers: 4,
    leaseTtlMs: 2_000,
    resyncMs: 250,
    pollMs: 20,
    backoff: { baseMs: 20, capMs: 200 },
    handler: { powerPollMs: 5, agentPollMs: 10, idleRecheckMs: 100, agentBootTimeoutMs: 10_000 },
    slotRecheckMs: 20,
    ...overrides,
  });
  conductors.push(conductor);
  return conductor;
}

async function createHost(name: string, spec: Partial<HostSpec> = {}): Promise<void> {
  const full: HostSpec = { bmc: { address: `fake://${name}`, credentialsName: 'bmc' }, online: false, ...spec };
  await store.create({ kind: 'Host', name, spec: full as Record<string, unknown>, status: initialHostStatus(full) as unknown as Record<string, unknown> });
}

async function edit(name: string, change: (row: StoredResource) => void): Promise<void> {
  for (;;) {
    const row = (await store.get({ kind: 'Host', name }))!;
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

async function status(name: string): Promise<HostStatus> {
  return (await store.get({ kind: 'Host', name }))!.status as unknown as HostStatus;
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Samples every host row until stopped: the most hosts seen holding a slot, and every waitingFor seen. */
function watchRows(state: string, slot: string): { stop(): Promise<{ maxHolding: number; waiting: Map<string, string[]> }> } {
  let running = true;
  let maxHolding = 0;
  const waiting = new Map<string, string[]>();
  const loop = (async () => {
    while (running) {
      const rows = (await store.list({ kind: 'Host' })).items;
      let holding = 0;
      for (const r of rows) {
        const s = r.status as unknown as HostStatus;
        if (s.provisioning.state === state && s.stepState?.slot === slot) holding += 1;
        if (s.waitingFor) waiting.set(r.name, [...(waiting.get(r.name) ?? []), s.waitingFor]);
      }
      maxHolding = Math.max(maxHolding, holding);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { maxHolding, waiting };
    },
  };
}

/** The largest number of the fleet's agent operations of `kind` that overlapped in time. */
function maxOverlap(fleet: FakeFleet, kind: 'deploy' | 'clean', since = 0): { max: number; count: number } {
  const edges: Array<[number, number]> = [];
  let count = 0;
  for (const name of NAMES) {
    for (const op of Object.values(fleet.machine(name).operations)) {
      if (op.kind !== kind || op.startedAt < since) continue;
      count += 1;
      edges.push([op.startedAt, 1], [op.completedAt ?? op.lostAt ?? Number.MAX_SAFE_INTEGER, -1]);
    }
  }
  // Ends sort before starts at the same instant: back-to-back is not overlap.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, delta] of edges) max = Math.max(max, (now += delta));
  return { max, count };
}

async function slotEventId(name: string, reason: string): Promise<number> {
  const events = await store.listEvents({ kind: 'Host', name }, { limit: 1000 });
  const found = events.filter((e) => e.reason === reason);
  expect(found, `${name} took one ${reason}`).toHaveLength(1);
  return found[0]!.id;
}

describe('conductor concurrency caps', () => {
  it('runs at most 2 deploys at once with maxConcurrentDeploys 2; the others wait in order and say so', async () => {
    const fleet = new FakeFleet({ delays: DELAYS });
    const conductor = start(fleet, { maxConcurrentDeploys: 2 });
    for (const name of NAMES) await createHost(name);
    await conductor.start();
    for (const name of NAMES) await waitFor(`${name} available`, async () => (await status(name)).provisioning.state === 'available');

    const watch = watchRows('provisioning', 'deploy');
    // 1. Hosts enter provisioning one after the other, so their order is known.
    for (const name of NAMES) {
      await edit(name, (r) => (r.spec.image = IMAGE));
      await waitFor(`${name} provisioning`, async () => (await status(name)).operationHistory.provision?.start !== undefined);
      await new Promise((r) => setTimeout(r, 3)); // distinct start times (ms resolution)
    }
    // 2. All finish.
    for (const name of NAMES) await waitFor(`${name} provisioned`, async () => (await status(name)).provisioning.state === 'provisioned');
    const seen = await watch.stop();

    // 3. Never more than 2 deploys on the hardware, and the cap was actually reached.
    const overlap = maxOverlap(fleet, 'deploy');
    expect(overlap.count).toBe(5);
    expect(overlap.max).toBe(2);
    expect(seen.maxHolding).toBeLessThanOrEqual(2);
    // 4. Hosts beyond the cap explained why they waited.
    const waiters = NAMES.slice(2).filter((n) => seen.waiting.has(n));
    expect(waiters.length).toBeGreaterThan(0);
    for (const name of waiters) {
      for (const message of seen.waiting.get(name)!) expect(message).toMatch(/^waiting for a deploy slot: \d+ deploys running \(cap 2\); position [1-3]$/);
    }
    // 5. Slots were taken in the order the hosts entered provisioning.
    const ids = [];
    for (const name of NAMES) ids.push(await slotEventId(name, 'DeploySlotTaken'));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    // 6. Nothing is left waiting or holding.
    for (const name of NAMES) {
      const s = await status(name);
      expect(s.waitingFor).toBeUndefined();
      expect(s.stepState?.slot).toBeUndefined();
    }
  });

  it('caps cleanings separately (maxConcurrentCleanings 1) and holds across two conductors', async () => {
    const fleet = new FakeFleet({ delays: DELAYS });
    const a = start(fleet, { maxConcurrentCleanings: 1, holderId: 'conductor-a' });
    const b = start(fleet, { maxConcurrentCleanings: 1, holderId: 'conductor-b' });
    for (const name of NAMES.slice(0, 3)) await createHost(name, { image: IMAGE });
    await a.start();
    await b.start();
    for (const name of NAMES.slice(0, 3)) await waitFor(`${name} provisioned`, async () => (await status(name)).provisioning.state === 'provisioned');

    // Enrolment cleaned each host once already (preparing, which the cap does not cover):
    // only the deprovisioning cleans from here on count.
    const deprovisionFrom = Date.now();
    const watch = watchRows('deprovisioning', 'clean');
    for (const name of NAMES.slice(0, 3)) {
      await edit(name, (r) => delete r.spec.image);
      await waitFor(`${name} deprovisioning`, async () => (await status(name)).operationHistory.deprovision?.start !== undefined);
      await new Promise((r) => setTimeout(r, 3));
    }
    for (const name of NAMES.slice(0, 3)) await waitFor(`${name} available`, async () => (await status(name)).provisioning.state === 'available');
    const seen = await watch.stop();

    const overlap = maxOverlap(fleet, 'clean', deprovisionFrom);
    expect(overlap.count).toBe(3);
    expect(overlap.max).toBe(1);
    expect(seen.maxHolding).toBe(1);
    for (const messages of seen.waiting.values()) {
      for (const m of messages) expect(m).toMatch(/^waiting for a cleaning slot: \d+ cleanings running \(cap 1\); position [12]$/);
    }
    const ids = [];
    for (const name of NAMES.slice(0, 3)) ids.push(await slotEventId(name, 'CleaningSlotTaken'));
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
  });
});
