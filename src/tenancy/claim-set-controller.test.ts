import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLAIM_SET_LABEL, type ClaimStatus } from '../model/claim.js';
import type { ClaimSetStatus } from '../model/claim-set.js';
import { openStore } from '../store/open-store.js';
import { SecretBox } from '../store/secret-box.js';
import type { Store, StoredResource } from '../store/store.js';
import { claimConfigDriveSource, createClaimController, SEALED_USER_DATA, toHost } from './claim-controller.js';
import { createClaimSetController } from './claim-set-controller.js';
import { byCreation, listAll, type TenancyController } from './reconcile-loop.js';
import { createHost, createPlatform, hostNamed, stepConductor } from './testing/tenancy-fixture.js';

let dir: string;
let store: Store;
let box: SecretBox;
let sets: TenancyController;
let claims: TenancyController;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-claimsets-'));
  store = await openStore({ database: join(dir, 'ingot.db') });
  box = new SecretBox(randomBytes(32));
  sets = createClaimSetController({ store, secretBox: box });
  claims = createClaimController({ store, secretBox: box });
});

afterEach(async () => {
  await sets.stop();
  await claims.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const template = { metadata: { labels: { tier: 'web' } }, spec: { nodeTypeName: 'standard' } };

async function setReplicas(name: string, replicas: number): Promise<void> {
  const set = (await store.get({ kind: 'ClaimSet', project: 'red', name }))!;
  await store.replace({ ...set, spec: { ...set.spec, replicas } });
}

async function claimsOf(name: string): Promise<StoredResource[]> {
  return (await listAll(store, 'Claim', 'red')).filter((c) => c.labels[CLAIM_SET_LABEL] === name).sort(byCreation);
}

const setStatus = async (name: string) => (await store.get({ kind: 'ClaimSet', project: 'red', name }))?.status as unknown as ClaimSetStatus;
/** Claim creation times are milliseconds: space scale-ups so "newest" is well defined. */
const tick = () => new Promise((r) => setTimeout(r, 5));

describe('claim set controller', () => {
  it('scales up with named, labelled claims from the template, counts their states, and scales down newest first', async () => {
    await createPlatform(store);
    for (let i = 0; i < 2; i++) await createHost(store, `h${i}`);
    await store.create({ kind: 'ClaimSet', project: 'red', name: 'web', spec: { replicas: 1, template }, status: {} });

    // 1. Up to 4, one at a time, so each claim is strictly newer than the last.
    for (const replicas of [1, 2, 3, 4]) {
      await setReplicas('web', replicas);
      await sets.reconcileOnce();
      await tick();
    }
    const created = await claimsOf('web');
    expect(created).toHaveLength(4);
    for (const c of created) {
      expect(c.name).toMatch(/^web-[a-z0-9]{5}$/);
      expect(c.labels).toEqual({ tier: 'web', [CLAIM_SET_LABEL]: 'web' });
      expect(c.spec).toEqual({ nodeTypeName: 'standard' });
    }
    expect(await setStatus('web')).toEqual({ replicas: 4, ready: 0, pending: 4, failed: 0 });

    // 2. Two hosts: two claims become ready, two wait.
    for (let i = 0; i < 3; i++) {
      await claims.reconcileOnce();
      await stepConductor(store);
    }
    await claims.reconcileOnce();
    await sets.reconcileOnce();
    expect(await setStatus('web')).toEqual({ replicas: 4, ready: 2, pending: 2, failed: 0 });

    // 3. Down to 1: the three newest are deleted, whatever their state; the oldest stays.
    await setReplicas('web', 1);
    await sets.reconcileOnce();
    const after = await claimsOf('web');
    expect(after.filter((c) => c.deletionTimestamp === undefined).map((c) => c.name)).toEqual([created[0]!.name]);
    expect(after.filter((c) => c.deletionTimestamp !== undefined).map((c) => c.name).sort()).toEqual(created.slice(1).map((c) => c.name).sort());
    expect(await setStatus('web')).toEqual({ replicas: 1, ready: 1, pending: 0, failed: 0 });
    const events = await store.listEvents({ kind: 'ClaimSet', project: 'red', name: 'web' });
    expect(events.map((e) => e.reason)).toEqual(['ScaledUp', 'ScaledUp', 'ScaledUp', 'ScaledUp', 'ScaledDown']);
    expect(events.at(-1)?.message).toContain(`${created[3]!.name}, ${created[2]!.name}, ${created[1]!.name}`);

    // 4. The claim controller releases them; the set keeps one.
    for (let i = 0; i < 4; i++) {
      await claims.reconcileOnce();
      await stepConductor(store);
    }
    await claims.reconcileOnce();
    expect((await claimsOf('web')).map((c) => c.name)).toEqual([created[0]!.name]);
  });

  it("re-seals the template's inline user data under each new claim's uid", async () => {
    await createPlatform(store);
    await createHost(store, 'h0');
    const set = await store.create({ kind: 'ClaimSet', project: 'red', name: 'web', spec: { replicas: 1, template: { spec: { nodeTypeName: 'standard', userData: SEALED_USER_DATA } } }, status: {} });
    await store.putSecretCiphertext({ uid: set.uid, version: 1, keyId: box.keyId, ciphertext: box.seal({ userData: '#cloud-config\nfrom: set\n' }, set.uid) });
    await sets.reconcileOnce();
    const [claim] = await claimsOf('web');
    expect(claim?.spec).toEqual({ nodeTypeName: 'standard', userData: SEALED_USER_DATA });
    const row = await store.getSecretCiphertext(claim!.uid);
    expect(box.open(row!.ciphertext, claim!.uid)).toEqual({ userData: '#cloud-config\nfrom: set\n' });
    // And it reaches the config drive.
    await claims.reconcileOnce();
    const content = await claimConfigDriveSource(store, box)(toHost(await hostNamed(store, 'h0')));
    expect(content?.userData).toBe('#cloud-config\nfrom: set\n');
  });

  it('a set being deleted deletes its claims and goes once they are gone', async () => {
    await createPlatform(store);
    const set = await store.create({ kind: 'ClaimSet', project: 'red', name: 'web', spec: { replicas: 2, template }, status: {} });
    await sets.reconcileOnce();
    expect(await claimsOf('web')).toHaveLength(2);
    // Another project's claim with the same label is not the set's.
    await store.create({ kind: 'Project', name: 'blue', spec: {}, status: {} });
    await store.create({ kind: 'Claim', project: 'blue', name: 'web-zzzzz', labels: { [CLAIM_SET_LABEL]: 'web' }, spec: { nodeTypeName: 'standard' }, status: { state: 'pending' } });

    const current = (await store.get({ kind: 'ClaimSet', project: 'red', name: 'web' }))!;
    await store.replace({ ...current, deletionTimestamp: new Date().toISOString() });
    await sets.reconcileOnce();
    expect((await claimsOf('web')).every((c) => c.deletionTimestamp !== undefined)).toBe(true);
    expect(await store.getByUid(set.uid)).toBeDefined();
    await claims.reconcileOnce(); // pending claims: removed at once
    await sets.reconcileOnce();
    expect(await store.getByUid(set.uid)).toBeUndefined();
    expect(await store.get({ kind: 'Claim', project: 'blue', name: 'web-zzzzz' })).toBeDefined();
    expect(((await store.get({ kind: 'Claim', project: 'blue', name: 'web-zzzzz' }))!.status as unknown as ClaimStatus).state).toBe('pending');
  });
});
