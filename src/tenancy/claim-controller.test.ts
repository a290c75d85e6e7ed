import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLAIM_PROJECT_LABEL, type ClaimStatus } from '../model/claim.js';
import { IngotError } from '../model/errors.js';
import type { HostSpec } from '../model/host.js';
import { CLAIM_LABEL } from '../model/node-type.js';
import { openStore } from '../store/open-store.js';
import { SecretBox } from '../store/secret-box.js';
import type { Store } from '../store/store.js';
import { BOOT_MODE_BEFORE_CLAIM_ANNOTATION, CLAIM_NAME_ANNOTATION, claimConfigDriveSource, createClaimController, SEALED_USER_DATA, toHost } from './claim-controller.js';
import type { TenancyController } from './reconcile-loop.js';
import { claimNamed, createClaim, createHost, createPlatform, deleteClaim, hostNamed, SHA256, stepConductor, type FakeConductorOptions } from './testing/tenancy-fixture.js';

const POOL = { name: 'rack1', spec: { ranges: [{ start: '192.0.2.10', end: '192.0.2.12' }], prefix: 24, gateway: '192.0.2.1', dnsServers: ['192.0.2.53'] } };

let dir: string;
let store: Store;
let box: SecretBox;
let controller: TenancyController;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-claims-'));
  store = await openStore({ database: join(dir, 'ingot.db') });
  box = new SecretBox(randomBytes(32));
  controller = createClaimController({ store, secretBox: box });
});

afterEach(async () => {
  await controller.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const statusOf = async (name: string, project = 'red') => (await claimNamed(store, name, project))?.status as ClaimStatus | undefined;

/** Controller pass, then one conductor step, `rounds` times; then a final controller pass. */
async function run(rounds: number, conductor: FakeConductorOptions = {}): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await controller.reconcileOnce();
    await stepConductor(store, conductor);
  }
  await controller.reconcileOnce();
}

describe('claim controller: binding and provisioning', () => {
  it('binds a claim to the matching host, labels it and sets image, secure boot and cleaning mode; ready once provisioned', async () => {
    await createPlatform(store, {
      nodeTypes: { secure: { selector: { capabilities: { secureBoot: true } }, osImageName: 'ubuntu', automatedCleaningMode: 'full' } },
      pool: POOL,
    });
    await createHost(store, 'plain', { secureBoot: false });
    await createHost(store, 'sb', { secureBoot: true });
    const claim = await createClaim(store, 'web', { nodeTypeName: 'secure', networks: [{ ipPoolName: 'rack1' }] });

    // 1. One pass: bound, addresses allocated, host set up, claim provisioning.
    await controller.reconcileOnce();
    const binding = await store.getClaimBinding(claim.uid);
    const sb = await hostNamed(store, 'sb');
    expect(binding?.hostUid).toBe(sb.uid);
    expect(sb.labels).toMatchObject({ [CLAIM_LABEL]: claim.uid, [CLAIM_PROJECT_LABEL]: 'red' });
    expect(sb.annotations[CLAIM_NAME_ANNOTATION]).toBe('red/web');
    const spec = sb.spec as HostSpec;
    expect(spec.image).toEqual({ url: 'https://images.example/ubuntu.raw', checksum: SHA256, checksumType: 'sha256', format: 'raw' });
    expect(spec.bootMode).toBe('UEFISecureBoot');
    expect(spec.automatedCleaningMode).toBe('full');
    expect(spec.online).toBe(true);
    expect((await hostNamed(store, 'plain')).labels[CLAIM_LABEL]).toBeUndefined();
    expect(await statusOf('web')).toEqual({ state: 'provisioning', hostName: 'sb', addresses: [{ ipPoolName: 'rack1', address: '192.0.2.10', prefix: 24, gateway: '192.0.2.1' }] });

    // 2. The conductor provisions it: provisioning -> provisioned -> claim ready.
    await stepConductor(store);
    await controller.reconcileOnce();
    expect((await statusOf('web'))?.state).toBe('provisioning');
    await stepConductor(store);
    await controller.reconcileOnce();
    const ready = await statusOf('web');
    expect(ready?.state).toBe('ready');
    expect(ready?.readyAt).toMatch(/^\d{4}-/);

    // 3. A pass with nothing to do writes nothing.
    const version = (await claimNamed(store, 'web'))?.resourceVersion;
    await controller.reconcileOnce();
    expect((await claimNamed(store, 'web'))?.resourceVersion).toBe(version);

    const reasons = (await store.listEvents({ kind: 'Claim', project: 'red', name: 'web' })).map((e) => e.reason);
    expect(reasons).toEqual(['Bound', 'Ready']);
  });

  it("keeps the host's own boot mode unless the node type or the image asks for secure boot", async () => {
    await createPlatform(store, { nodeTypes: { standard: { selector: {}, osImageName: 'ubuntu' } } });
    await createHost(store, 'h1', { spec: { bmc: { address: 'fake://h1', credentialsName: 'bmc' }, bootMode: 'legacy' } });
    await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await controller.reconcileOnce();
    const host = await hostNamed(store, 'h1');
    expect((host.spec as HostSpec).bootMode).toBe('legacy');
    expect((host.spec as HostSpec).automatedCleaningMode).toBe('metadata');
    expect(host.annotations[BOOT_MODE_BEFORE_CLAIM_ANNOTATION]).toBe('legacy');
  });

  it('an OSImage with secureBoot sets UEFISecureBoot on a capable host even when the node type does not require it', async () => {
    await createPlatform(store, { imageSecureBoot: true });
    await createHost(store, 'h1', { secureBoot: true });
    await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await controller.reconcileOnce();
    expect(((await hostNamed(store, 'h1')).spec as HostSpec).bootMode).toBe('UEFISecureBoot');
  });

  it('a signed OSImage on a host without secure boot (allowed by the node type) keeps the host boot mode', async () => {
    await createPlatform(store, { imageSecureBoot: true });
    await createHost(store, 'h1', { secureBoot: false });
    await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await controller.reconcileOnce();
    expect(((await hostNamed(store, 'h1')).spec as HostSpec).bootMode).toBe('UEFI');
  });

  it('a host provisioning error fails the claim with a fixed reason, never the host error text', async () => {
    await createPlatform(store);
    await createHost(store, 'h1');
    await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await run(3, { failDeploy: new Set(['h1']) });
    const status = await statusOf('a');
    expect(status?.state).toBe('failed');
    expect(status?.reason).toContain('could not be provisioned');
    expect(status?.reason).toContain('provisioning');
    expect(status?.reason).not.toContain('10.9.8.7');
    const events = await store.listEvents({ kind: 'Claim', project: 'red', name: 'a' });
    expect(events.map((e) => e.reason)).toContain('Failed');
    expect(JSON.stringify(events)).not.toContain('10.9.8.7');
  });
});

describe('claim controller: project usage', () => {
  it("records the project's claims in status.usage, total and per node type, and follows deletions", async () => {
    await createPlatform(store);
    await createHost(store, 'h1');
    await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await createClaim(store, 'b', { nodeTypeName: 'standard' });
    await controller.reconcileOnce();
    const usage = async () => (await store.get({ kind: 'Project', name: 'red' }))!.status.usage;
    expect(await usage()).toEqual({ claims: 2, nodeTypes: { standard: 2 } });
    // b never got a host: deleting it frees its place at once.
    await deleteClaim(store, 'red', 'b');
    await controller.reconcileOnce();
    await controller.reconcileOnce();
    expect(await usage()).toEqual({ claims: 1, nodeTypes: { standard: 1 } });
  });
});

describe('claim controller: why a claim waits', () => {
  it('no matching host: pending with the scheduler reason, and nothing bound', async () => {
    await createPlatform(store, { nodeTypes: { secure: { selector: { capabilities: { secureBoot: true } }, osImageName: 'ubuntu' } } });
    await createHost(store, 'plain', { secureBoot: false });
    await createClaim(store, 'a', { nodeTypeName: 'secure' });
    await controller.reconcileOnce();
    const status = await statusOf('a');
    expect(status?.state).toBe('pending');
    expect(status?.reason).toMatch(/^no available host matches: 0 hosts with secureBoot/);
    expect(await store.listHostBindings()).toHaveLength(0);
    expect((await store.listEvents({ kind: 'Claim', project: 'red', name: 'a' })).map((e) => e.reason)).toEqual(['Pending']);
  });

  it('a node type the project may not claim, or that does not exist, stays pending with a reason', async () => {
    await createPlatform(store, { projectSpec: { allowedNodeTypes: ['gpu.*'] } });
    await createHost(store, 'h1');
    await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await createClaim(store, 'b', { nodeTypeName: 'gpu.big' });
    await controller.reconcileOnce();
    expect((await statusOf('a'))?.reason).toBe('project red may not claim node type "standard" (spec.allowedNodeTypes); ask a platform admin, or change spec.nodeTypeName');
    expect((await statusOf('b'))?.reason).toContain('node type "gpu.big" does not exist');
    expect(await store.listHostBindings()).toHaveLength(0);
  });

  it('hard quotas: only the first N claims of the project (and of a node type) are bound, oldest first', async () => {
    await createPlatform(store, {
      projectSpec: { quotas: { claims: { hard: 3 }, nodeTypes: { big: { hard: 1 } } } },
      nodeTypes: { standard: { selector: {}, osImageName: 'ubuntu' }, big: { selector: { minMemoryMebibytes: 131072 }, osImageName: 'ubuntu' } },
    });
    for (let i = 0; i < 6; i++) await createHost(store, `h${i}`, { ramMebibytes: 262144 });
    await createClaim(store, 'c0', { nodeTypeName: 'big' });
    await createClaim(store, 'c1', { nodeTypeName: 'big' });
    await createClaim(store, 'c2', { nodeTypeName: 'standard' });
    await createClaim(store, 'c3', { nodeTypeName: 'standard' });
    await createClaim(store, 'c4', { nodeTypeName: 'standard' });
    await controller.reconcileOnce();
    expect((await statusOf('c0'))?.state).toBe('provisioning');
    expect(await statusOf('c1')).toEqual({ state: 'pending', reason: 'quota of 1 claims of node type big reached in project red (spec.quotas.nodeTypes.big.hard)' });
    expect((await statusOf('c2'))?.state).toBe('provisioning');
    expect((await statusOf('c3'))?.state).toBe('provisioning');
    expect(await statusOf('c4')).toEqual({ state: 'pending', reason: 'quota of 3 claims reached in project red (spec.quotas.claims.hard)' });
    expect(await store.listHostBindings('red')).toHaveLength(3);

    // Deleting a bound claim frees a slot only once its host is released: then c4 is next
    // (c1 still exceeds its node type's quota).
    await deleteClaim(store, 'red', 'c2');
    await run(4);
    expect(await claimNamed(store, 'c2')).toBeUndefined();
    expect((await statusOf('c4'))?.state).toMatch(/provisioning|ready/);
    expect((await statusOf('c1'))?.state).toBe('pending');
    expect(await store.listHostBindings('red')).toHaveLength(3);
  });

  it('an exhausted pool keeps the bound claim pending (host untouched) until an address is free', async () => {
    await createPlatform(store, { pool: { name: 'tiny', spec: { ranges: [{ start: '192.0.2.10', end: '192.0.2.10' }], prefix: 24, gateway: '192.0.2.1' } } });
    await createHost(store, 'h1');
    await createHost(store, 'h2');
    await createClaim(store, 'a', { nodeTypeName: 'standard', networks: [{ ipPoolName: 'tiny' }] });
    await createClaim(store, 'b', { nodeTypeName: 'standard', networks: [{ ipPoolName: 'tiny' }] });
    await controller.reconcileOnce();
    expect((await statusOf('a'))?.addresses?.[0]?.address).toBe('192.0.2.10');
    const b = await statusOf('b');
    expect(b?.state).toBe('pending');
    expect(b?.reason).toMatch(/^spec\.networks\[0\]: IP pool "tiny" is exhausted/);
    const claimB = await claimNamed(store, 'b');
    const hostOfB = (await store.getClaimBinding(claimB!.uid))!.hostUid;
    const heldHost = (await store.getByUid(hostOfB))!;
    expect(heldHost.labels[CLAIM_LABEL]).toBeUndefined();
    expect((heldHost.spec as HostSpec).image).toBeUndefined();

    // a goes away; b gets the freed address and its host is set up.
    await deleteClaim(store, 'red', 'a');
    await run(4);
    expect(await claimNamed(store, 'a')).toBeUndefined();
    expect((await statusOf('b'))?.addresses?.[0]?.address).toBe('192.0.2.10');
    expect((await statusOf('b'))?.state).toMatch(/provisioning|ready/);
  });
});

describe('claim controller: release', () => {
  it('delete: image removed and power off, releasing while cleaned, then host freed, addresses released, row removed', async () => {
    await createPlatform(store, { nodeTypes: { secure: { selector: {}, osImageName: 'ubuntu' } }, imageSecureBoot: true, pool: POOL });
    await createHost(store, 'h1', { secureBoot: true });
    const claim = await createClaim(store, 'a', { nodeTypeName: 'secure', userData: SEALED_USER_DATA, networks: [{ ipPoolName: 'rack1' }] });
    await store.putSecretCiphertext({ uid: claim.uid, version: 1, keyId: box.keyId, ciphertext: box.seal({ userData: '#cloud-config\n' }, claim.uid) });
    await run(2);
    expect((await statusOf('a'))?.state).toBe('ready');
    expect(((await hostNamed(store, 'h1')).spec as HostSpec).bootMode).toBe('UEFISecureBoot');

    // 1. Deleted: the controller removes the image; the claim says releasing.
    await deleteClaim(store, 'red', 'a');
    await controller.reconcileOnce();
    let host = await hostNamed(store, 'h1');
    expect((host.spec as HostSpec).image).toBeUndefined();
    expect((host.spec as HostSpec).online).toBe(false);
    expect(host.labels[CLAIM_LABEL]).toBe(claim.uid);
    expect((await statusOf('a'))?.state).toBe('releasing');
    expect((await statusOf('a'))?.hostName).toBe('h1');

    // 2. Cleaning (deprovisioning): still releasing, still bound.
    await stepConductor(store);
    await controller.reconcileOnce();
    expect((await hostNamed(store, 'h1')).status.provisioning).toMatchObject({ state: 'deprovisioning' });
    expect((await statusOf('a'))?.state).toBe('releasing');
    expect(await store.getClaimBinding(claim.uid)).toBeDefined();

    // 3. Available again: everything given back, the row removed.
    await stepConductor(store);
    await controller.reconcileOnce();
    expect(await claimNamed(store, 'a')).toBeUndefined();
    expect(await store.getClaimBinding(claim.uid)).toBeUndefined();
    expect(await store.listClaimAllocations(claim.uid)).toEqual([]);
    expect(await store.getSecretCiphertext(claim.uid)).toBeUndefined();
    host = await hostNamed(store, 'h1');
    expect(host.labels[CLAIM_LABEL]).toBeUndefined();
    expect(host.labels[CLAIM_PROJECT_LABEL]).toBeUndefined();
    expect(host.annotations[CLAIM_NAME_ANNOTATION]).toBeUndefined();
    expect(host.annotations[BOOT_MODE_BEFORE_CLAIM_ANNOTATION]).toBeUndefined();
    expect((host.spec as HostSpec).bootMode).toBe('UEFI');
    const reasons = (await store.listEvents({ kind: 'Claim', project: 'red', name: 'a' })).map((e) => e.reason);
    expect(reasons).toEqual(['Bound', 'Ready', 'Releasing', 'Released']);

    // 4. The freed host serves the next claim.
    const next = await createClaim(store, 'b', { nodeTypeName: 'secure', networks: [{ ipPoolName: 'rack1' }] });
    await controller.reconcileOnce();
    expect((await store.getClaimBinding(next.uid))?.hostUid).toBe(host.uid);
    expect((await statusOf('b'))?.addresses?.[0]?.address).toBe('192.0.2.10');
  });

  it('failed cleaning keeps the host bound and labelled; the claim stays releasing', async () => {
    await createPlatform(store);
    await createHost(store, 'h1');
    const claim = await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await run(2);
    await deleteClaim(store, 'red', 'a');
    await run(4, { failCleaning: new Set(['h1']) });
    const host = await hostNamed(store, 'h1');
    expect(host.status.provisioning).toMatchObject({ state: 'error' });
    expect(host.labels[CLAIM_LABEL]).toBe(claim.uid);
    expect((await store.getClaimBinding(claim.uid))?.hostUid).toBe(host.uid);
    const status = await statusOf('a');
    expect(status?.state).toBe('releasing');
    expect(status?.reason).toContain('cleaning the machine failed');
    // Nobody else gets it.
    const other = await createClaim(store, 'b', { nodeTypeName: 'standard' });
    await controller.reconcileOnce();
    expect(await store.getClaimBinding(other.uid)).toBeUndefined();
    expect((await statusOf('b'))?.state).toBe('pending');
  });

  it('a claim deleted while pending is removed at once, with its sealed user data', async () => {
    await createPlatform(store);
    const claim = await createClaim(store, 'a', { nodeTypeName: 'standard', userData: SEALED_USER_DATA });
    await store.putSecretCiphertext({ uid: claim.uid, version: 1, keyId: box.keyId, ciphertext: box.seal({ userData: 'x' }, claim.uid) });
    await controller.reconcileOnce();
    expect((await statusOf('a'))?.state).toBe('pending');
    await deleteClaim(store, 'red', 'a');
    await controller.reconcileOnce();
    expect(await claimNamed(store, 'a')).toBeUndefined();
    expect(await store.getSecretCiphertext(claim.uid)).toBeUndefined();
  });

  it('a claim deleted before the conductor started provisioning gives the host back in one pass', async () => {
    await createPlatform(store);
    await createHost(store, 'h1');
    const claim = await createClaim(store, 'a', { nodeTypeName: 'standard' });
    await controller.reconcileOnce();
    expect((await hostNamed(store, 'h1')).labels[CLAIM_LABEL]).toBe(claim.uid);
    await deleteClaim(store, 'red', 'a');
    await controller.reconcileOnce();
    const host = await hostNamed(store, 'h1');
    expect(await claimNamed(store, 'a')).toBeUndefined();
    expect(host.labels[CLAIM_LABEL]).toBeUndefined();
    expect((host.spec as HostSpec).image).toBeUndefined();
    expect(await store.listHostBindings()).toHaveLength(0);
  });

  it('a binding whose claim row is gone (removed while another process bound it) is released', async () => {
    await createPlatform(store, { pool: POOL });
    const host = await createHost(store, 'h1');
    const claim = await createClaim(store, 'a', { nodeTypeName: 'standard', networks: [{ ipPoolName: 'rack1' }] });
    await controller.reconcileOnce();
    await stepConductor(store); // provisioning
    await store.remove({ kind: 'Claim', project: 'red', name: 'a' });
    await run(4);
    const after = await hostNamed(store, 'h1');
    expect(await store.listHostBindings()).toHaveLength(0);
    expect(after.labels[CLAIM_LABEL]).toBeUndefined();
    expect((after.spec as HostSpec).image).toBeUndefined();
    expect(after.status.provisioning).toMatchObject({ state: 'available' });
    expect(await store.listClaimAllocations(claim.uid)).toEqual([]);
    expect(after.uid).toBe(host.uid);
  });

  it('start() reconciles on its own, woken by commits', async () => {
    await createPlatform(store);
    await createHost(store, 'h1');
    controller = createClaimController({ store, secretBox: box, pollMs: 60_000 });
    controller.start();
    await createClaim(store, 'a', { nodeTypeName: 'standard' });
    for (let i = 0; i < 200 && (await statusOf('a'))?.state !== 'provisioning'; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await statusOf('a'))?.state).toBe('provisioning');
  });
});

describe('claimConfigDriveSource', () => {
  async function boundHost(spec: Record<string, unknown>) {
    await createPlatform(store, { pool: POOL });
    await createHost(store, 'h1', { nicGbps: [25, 100] });
    const claim = await createClaim(store, 'a', spec);
    return claim;
  }

  it('inline user data (sealed under the claim uid), network data with the allocated address, meta data with SSH keys', async () => {
    const claim = await boundHost({ nodeTypeName: 'standard', userData: SEALED_USER_DATA, sshKeys: ['ssh-ed25519 AAAAC3 me@host'], networks: [{ ipPoolName: 'rack1' }] });
    await store.putSecretCiphertext({ uid: claim.uid, version: 1, keyId: box.keyId, ciphertext: box.seal({ userData: '#cloud-config\nhostname: web\n' }, claim.uid) });
    await controller.reconcileOnce();
    const source = claimConfigDriveSource(store, box);
    const content = await source(toHost(await hostNamed(store, 'h1')));
    expect(content?.userData).toBe('#cloud-config\nhostname: web\n');
    expect(content?.secretUse).toBeUndefined();
    expect(content?.metaData).toEqual({ claim: 'a', project: 'red', public_keys: { key0: 'ssh-ed25519 AAAAC3 me@host' } });
    const networkData = content?.networkData as { links: Array<{ ethernet_mac_address: string }>; networks: Array<{ ip_address: string; netmask: string }> };
    // The boot NIC (bootMACAddress = first NIC) carries it.
    expect(networkData.links).toEqual([{ id: 'eno1', type: 'phy', ethernet_mac_address: '52:54:00:00:00:10' }]);
    expect(networkData.networks[0]).toMatchObject({ ip_address: '192.0.2.10', netmask: '255.255.255.0' });
  });

  it("user data from a Secret of the claim's own project, reported as a secret use; a NIC chosen by MAC", async () => {
    await boundHost({ nodeTypeName: 'standard', userDataSecretName: 'boot', networks: [{ ipPoolName: 'rack1', macAddress: '52:54:00:00:00:11' }] });
    const secret = await store.create({ kind: 'Secret', project: 'red', name: 'boot', spec: {}, status: {} });
    await store.putSecretCiphertext({ uid: secret.uid, version: 3, keyId: box.keyId, ciphertext: box.seal({ userData: '#!/bin/sh\necho hi\n' }, secret.uid) });
    // A platform secret of the same name must never be used for a claim.
    const platform = await store.create({ kind: 'Secret', name: 'boot', spec: {}, status: {} });
    await store.putSecretCiphertext({ uid: platform.uid, version: 1, keyId: box.keyId, ciphertext: box.seal({ userData: 'platform' }, platform.uid) });
    await controller.reconcileOnce();
    const content = await claimConfigDriveSource(store, box)(toHost(await hostNamed(store, 'h1')));
    expect(content?.userData).toBe('#!/bin/sh\necho hi\n');
    expect(content?.secretUse).toEqual({ secretName: 'boot', secretProject: 'red', secretVersion: 3 });
    expect((content?.networkData as { links: Array<{ id: string }> }).links[0]?.id).toBe('eno2');
  });

  it('refuses a claim whose secret vanished, with a message naming it and no value', async () => {
    await boundHost({ nodeTypeName: 'standard', userDataSecretName: 'boot' });
    await controller.reconcileOnce();
    const error = await claimConfigDriveSource(store, box)(toHost(await hostNamed(store, 'h1'))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IngotError);
    expect((error as IngotError).message).toContain('Secret "boot" of project red');
    expect((error as IngotError).message).toContain('does not exist');
  });

  it('returns undefined for a host without the claim label', async () => {
    await createPlatform(store);
    await createHost(store, 'h1');
    expect(await claimConfigDriveSource(store, box)(toHost(await hostNamed(store, 'h1')))).toBeUndefined();
  });
});
