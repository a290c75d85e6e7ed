// Two claim controllers, each with its own store instance on one database (as two server
// processes on one PostgreSQL), reconciling the same claims at the same moment.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../../test/support/postgres.js';
import type { ClaimStatus } from '../model/claim.js';
import { CLAIM_LABEL } from '../model/node-type.js';
import { openStore } from '../store/open-store.js';
import { SecretBox } from '../store/secret-box.js';
import type { Store, StoredResource } from '../store/store.js';
import { createClaimController } from './claim-controller.js';
import { listAll } from './reconcile-loop.js';
import { createClaim, createHost, createPlatform, deleteClaim, stepConductor } from './testing/tenancy-fixture.js';

const server = await postgresForTests();
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function sqliteDatabase(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-claim-race-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'ingot.db');
}

async function postgresDatabase(): Promise<string> {
  if ('skipReason' in server) throw new Error(server.skipReason);
  const database: TestDatabase = await createTestDatabase(server.url);
  cleanups.push(() => database.drop());
  return database.url;
}

// SQLite serves one process; two better-sqlite3 connections in ONE process can deadlock (a
// busy wait blocks the event loop the other connection's commit needs), so the SQLite case runs
// both controllers on one store instance: their passes still interleave at every await.
const backends: Array<[string, () => Promise<string>, boolean, string | undefined]> = [
  ['PostgreSQL (two store instances, as two server processes)', postgresDatabase, true, 'skipReason' in server ? server.skipReason : undefined],
  ['SQLite (one store, two controllers in one process)', sqliteDatabase, false, undefined],
];

const name = (i: number) => `claim-${String(i).padStart(2, '0')}`;

describe.each(backends)('two claim controllers on %s', (_, makeDatabase, twoStores, skipReason) => {
  it.skipIf(skipReason !== undefined)(
    '50 claims, 20 matching hosts: exactly the 20 oldest bound, each host once, distinct addresses, 30 pending with a reason; released hosts go to the 2 oldest pending',
    async () => {
      const url = await makeDatabase();
      const first = await openStore({ database: url, poolSize: 4 });
      const stores: Store[] = twoStores ? [first, await openStore({ database: url, poolSize: 4 })] : [first];
      const box = new SecretBox(randomBytes(32));
      const controllers = [0, 1].map((i) => createClaimController({ store: stores[i % stores.length] as Store, secretBox: box }));
      const a = first;
      try {
        await createPlatform(a, {
          nodeTypes: { secure: { selector: { minMemoryMebibytes: 65536, capabilities: { secureBoot: true } }, osImageName: 'ubuntu' } },
          pool: { name: 'rack1', spec: { ranges: [{ start: '192.0.2.10', end: '192.0.2.59' }], prefix: 24, gateway: '192.0.2.1' } },
        });
        for (let i = 0; i < 20; i++) await createHost(a, `m${String(i).padStart(2, '0')}`, { ramMebibytes: [65536, 131072, 262144][i % 3], secureBoot: true });
        for (let i = 0; i < 5; i++) await createHost(a, `plain${i}`, { secureBoot: false });
        // Names sort in creation order, so claims created in the same millisecond still order.
        for (let i = 0; i < 50; i++) await createClaim(a, name(i), { nodeTypeName: 'secure', networks: [{ ipPoolName: 'rack1' }] });

        const round = async () => {
          await Promise.all(controllers.map((c) => c.reconcileOnce()));
        };
        // 1. Both controllers at once, a few times (losers of a race finish on the next pass).
        for (let i = 0; i < 3; i++) await round();

        const claims = new Map((await listAll(a, 'Claim', 'red')).map((c) => [c.name, c]));
        const bindings = await a.listHostBindings();
        expect(bindings).toHaveLength(20);
        expect(new Set(bindings.map((b) => b.hostUid)).size).toBe(20);
        expect(new Set(bindings.map((b) => b.claimUid)).size).toBe(20);
        const hosts = new Map((await listAll(a, 'Host', '')).map((h) => [h.uid, h]));
        for (const b of bindings) {
          expect(hosts.get(b.hostUid)?.name).toMatch(/^m\d\d$/);
          expect(hosts.get(b.hostUid)?.labels[CLAIM_LABEL]).toBe(b.claimUid);
        }
        const boundUids = new Set(bindings.map((b) => b.claimUid));
        for (let i = 0; i < 50; i++) {
          const claim = claims.get(name(i)) as StoredResource;
          const status = claim.status as unknown as ClaimStatus;
          if (i < 20) {
            expect(boundUids.has(claim.uid)).toBe(true);
            expect(status.state).toBe('provisioning');
            expect(status.addresses).toHaveLength(1);
          } else {
            expect(boundUids.has(claim.uid)).toBe(false);
            expect(status.state).toBe('pending');
            expect(status.reason).toMatch(/^no available host matches/);
          }
        }
        const addresses = [...claims.values()].flatMap((c) => ((c.status as unknown as ClaimStatus).addresses ?? []).map((x) => x.address));
        expect(addresses).toHaveLength(20);
        expect(new Set(addresses).size).toBe(20);
        const pool = await a.get({ kind: 'IPPool', name: 'rack1' });
        const allocations = await a.listAllocations(pool!.uid);
        expect(allocations).toHaveLength(20);
        expect(new Set(allocations.map((x) => x.address)).size).toBe(20);
        expect(allocations.every((x) => boundUids.has(x.claimUid))).toBe(true);

        // 2. Provision, then delete two bound claims and let them go through release.
        for (let i = 0; i < 3; i++) {
          await stepConductor(a);
          await round();
        }
        expect((((await a.get({ kind: 'Claim', project: 'red', name: name(3) }))!.status) as unknown as ClaimStatus).state).toBe('ready');
        await deleteClaim(a, 'red', name(3));
        await deleteClaim(a, 'red', name(7));
        for (let i = 0; i < 8; i++) {
          await round();
          await stepConductor(a);
        }
        await round();

        const after = new Map((await listAll(a, 'Claim', 'red')).map((c) => [c.name, c]));
        expect(after.has(name(3))).toBe(false);
        expect(after.has(name(7))).toBe(false);
        const bindingsAfter = await a.listHostBindings();
        expect(bindingsAfter).toHaveLength(20);
        expect(new Set(bindingsAfter.map((b) => b.hostUid)).size).toBe(20);
        const boundAfter = new Set(bindingsAfter.map((b) => b.claimUid));
        // The two oldest pending claims got the freed hosts; every younger one still waits.
        expect(boundAfter.has(after.get(name(20))!.uid)).toBe(true);
        expect(boundAfter.has(after.get(name(21))!.uid)).toBe(true);
        for (let i = 22; i < 50; i++) expect((after.get(name(i))!.status as unknown as ClaimStatus).state).toBe('pending');
        const addressesAfter = (await a.listAllocations(pool!.uid)).map((x) => x.address);
        expect(addressesAfter).toHaveLength(20);
        expect(new Set(addressesAfter).size).toBe(20);
        for (const c of after.values()) {
          if (boundAfter.has(c.uid)) expect((c.status as unknown as ClaimStatus).addresses?.[0]?.address).toMatch(/^192\.0\.2\./);
        }
      } finally {
        for (const c of controllers) await c.stop();
        for (const s of stores) await s.close();
      }
    },
  );
});
