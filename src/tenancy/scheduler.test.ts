import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../../test/support/postgres.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { scheduleClaims, type ScheduleResult, type SchedulableClaim } from './scheduler.js';
import { testHost } from './testing/host-builder.js';

const server = await postgresForTests();
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function sqliteDatabase(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-scheduler-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'ingot.db');
}

async function postgresDatabase(): Promise<string> {
  if ('skipReason' in server) throw new Error(server.skipReason);
  const database: TestDatabase = await createTestDatabase(server.url);
  cleanups.push(() => database.drop());
  return database.url;
}

const nodeTypes = [{ name: 'secure', spec: { selector: { minMemoryMebibytes: 65536, capabilities: { secureBoot: true } } } }];
// 20 matching hosts of three sizes, and 5 that do not match (no secure boot).
const hosts = [
  ...Array.from({ length: 20 }, (_, i) => testHost(`m${String(i).padStart(2, '0')}`, { ramMebibytes: [65536, 131072, 262144][i % 3], secureBoot: true })),
  ...Array.from({ length: 5 }, (_, i) => testHost(`plain${i}`, { ramMebibytes: 65536 })),
];
const claims: SchedulableClaim[] = Array.from({ length: 50 }, (_, i) => ({ uid: `claim-uid-${i}`, name: `claim-${String(i).padStart(2, '0')}`, project: 'team-a', nodeTypeName: 'secure' }));

const backends: Array<[string, () => Promise<string>, string | undefined]> = [
  ['SQLite (two connections to one file)', sqliteDatabase, undefined],
  ['PostgreSQL (two store instances, as two server processes)', postgresDatabase, 'skipReason' in server ? server.skipReason : undefined],
];

describe.each(backends)('scheduleClaims on %s', (_, makeDatabase, skipReason) => {
  it.skipIf(skipReason !== undefined)('50 claims, 20 matching hosts, two schedulers racing: 20 bound once each, 30 pending with a reason; freed hosts go to the oldest', async () => {
    const url = await makeDatabase();
    const stores: Store[] = [await openStore({ database: url, poolSize: 4 }), await openStore({ database: url, poolSize: 4 })];
    try {
      // 1. Two schedulers over the same pending claims at the same moment.
      const [a, b] = await Promise.all(stores.map((store) => scheduleClaims({ store, pendingClaims: claims, hosts, nodeTypes })));
      const bindings = await stores[0]!.listHostBindings();
      expect(bindings).toHaveLength(20);
      expect(new Set(bindings.map((x) => x.hostUid)).size).toBe(20);
      expect(bindings.every((x) => x.hostUid.startsWith('uid-m'))).toBe(true);
      // 2. The 20 oldest claims got the hosts, and both schedulers agree on who got which.
      const boundClaims = new Set(bindings.map((x) => x.claimUid));
      expect([...boundClaims].sort()).toEqual(claims.slice(0, 20).map((c) => c.uid).sort());
      const hostOf = new Map(bindings.map((x) => [x.claimUid, x.hostUid]));
      for (const results of [a!, b!]) {
        expect(results).toHaveLength(50);
        for (const r of results) {
          if (r.outcome === 'bound') expect(r.hostUid).toBe(hostOf.get(r.claimUid));
          else expect(boundClaims.has(r.claimUid)).toBe(false);
        }
      }
      // 3. The 30 others are pending, saying why.
      const pending = a!.filter((r): r is Extract<ScheduleResult, { outcome: 'pending' }> => r.outcome === 'pending');
      expect(pending.map((r) => r.claimUid)).toEqual(claims.slice(20).map((c) => c.uid));
      expect(pending[0]?.reason).toBe('no available host matches: 0 hosts with secureBoot (5 available hosts checked: 5 lack secure boot; not available: 20 bound to a claim)');

      // 4. Two claims are released; the next pass binds the two oldest pending claims, in order.
      await stores[0]!.unbindHost('claim-uid-3');
      await stores[1]!.unbindHost('claim-uid-7');
      const stillPending = claims.slice(20);
      const [c, d] = await Promise.all(stores.map((store) => scheduleClaims({ store, pendingClaims: stillPending, hosts, nodeTypes })));
      for (const results of [c!, d!]) {
        expect(results.filter((r) => r.outcome === 'bound').map((r) => r.claimName)).toEqual(['claim-20', 'claim-21']);
      }
      const after = await stores[1]!.listHostBindings();
      expect(after).toHaveLength(20);
      expect(new Set(after.map((x) => x.hostUid)).size).toBe(20);
    } finally {
      for (const store of stores) await store.close();
    }
  });
  it.skipIf(skipReason !== undefined)('two schedulers with different claims contending for the same hosts: losers move on, results agree with the store', async () => {
    const url = await makeDatabase();
    const stores: Store[] = [await openStore({ database: url, poolSize: 4 }), await openStore({ database: url, poolSize: 4 })];
    try {
      // Each process sees a different half of the claims, so they pick the same hosts for different claims.
      const halves = [claims.filter((_, i) => i % 2 === 0), claims.filter((_, i) => i % 2 === 1)];
      const results = await Promise.all(stores.map((store, i) => scheduleClaims({ store, pendingClaims: halves[i]!, hosts, nodeTypes })));
      const bindings = await stores[0]!.listHostBindings();
      expect(bindings).toHaveLength(20);
      expect(new Set(bindings.map((x) => x.hostUid)).size).toBe(20);
      const hostOf = new Map(bindings.map((x) => [x.claimUid, x.hostUid]));
      const all = results.flat();
      expect(all).toHaveLength(50);
      expect(all.filter((r) => r.outcome === 'bound')).toHaveLength(20);
      for (const r of all) {
        if (r.outcome === 'bound') expect(r.hostUid, r.claimName).toBe(hostOf.get(r.claimUid));
        else expect(hostOf.has(r.claimUid), r.claimName).toBe(false);
      }
    } finally {
      for (const store of stores) await store.close();
    }
  });
});

describe('scheduleClaims', () => {
  it('takes the smallest sufficient host, keeps a bound claim where it is, and explains an unknown node type', async () => {
    const store = await openStore({ database: ':memory:' });
    try {
      const fleet = [testHost('large', { ramMebibytes: 262144, secureBoot: true }), testHost('small', { ramMebibytes: 65536, secureBoot: true })];
      const first = await scheduleClaims({ store, pendingClaims: [claims[0]!], hosts: fleet, nodeTypes });
      expect(first).toEqual([{ claimUid: 'claim-uid-0', claimName: 'claim-00', outcome: 'bound', hostUid: 'uid-small', hostName: 'small' }]);
      const again = await scheduleClaims({ store, pendingClaims: [claims[0]!, { ...claims[1]!, nodeTypeName: 'gpu' }], hosts: fleet, nodeTypes });
      expect(again[0]).toEqual(first[0]);
      expect(again[1]).toMatchObject({ outcome: 'pending', reason: expect.stringContaining('node type "gpu" does not exist') });
    } finally {
      await store.close();
    }
  });
});
