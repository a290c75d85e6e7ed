// The config-drive source hook: provisioning asks it first (user data, network data, meta data
// merged over the defaults), falls back to spec.userDataName when it has nothing for the host,
// turns its IngotError/CredentialsProblem into a provisioning failure, refuses content that
// cannot go on a drive, and reports its secret use for the audit trail (handler level on the
// fake fleet, then through createConductor on a real store).
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createDriverRegistry } from '../drivers/registry.js';
import { FakeFleet } from '../drivers/fake/fake-fleet.js';
import { IngotError } from '../model/errors.js';
import { initialHostStatus, type Host, type HostSpec, type HostStatus } from '../model/host.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { createManualClock } from './clock.js';
import { CONFIG_DRIVE_LIMITS, type ConfigDriveContent, type ConfigDriveSource } from './config-drive-source.js';
import { createConductor, type Conductor } from './conductor.js';
import { CredentialsProblem, createSecretCredentialsResolver, type SecretUseEvent } from './credentials.js';
import { harness, host } from './handlers/test-kit.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const NETWORK = { links: [{ id: 'eno1', type: 'phy', ethernet_mac_address: '52:54:00:12:34:56' }], networks: [{ id: 'net0', link: 'eno1', type: 'ipv4', ip_address: '10.1.2.3', netmask: '255.255.255.0' }], services: [] };
const USER_DATA = '#cloud-config\nhostname: tenant-box\n';

describe('provisioning with a config drive source', () => {
  it('writes the source user data and network data, and merges its meta data over the defaults', async () => {
    const asked: string[] = [];
    const source: ConfigDriveSource = async (h) => {
      asked.push(h.metadata.name);
      return { userData: USER_DATA, networkData: NETWORK, metaData: { hostname: 'tenant-box', project: 'p1' } };
    };
    const h = harness({ configDriveSource: source });
    // spec.userDataName names a secret that does not exist: the source wins, so it is not read.
    const { outcome } = await h.drive(host('provisioning').withImage().online().withSpec({ userDataName: 'missing-ud' }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    const drive = h.fleet.machine('node-1').disk.written?.configDrive;
    expect(drive?.metaData).toEqual({ uuid: 'uid-node-1', name: 'node-1', hostname: 'tenant-box', project: 'p1' });
    expect(drive?.networkData).toEqual(NETWORK);
    expect(drive?.userDataSha256).toBe(sha256(USER_DATA));
    expect(asked).toEqual(['node-1']);
  });

  it('no source content for the host: user data from spec.userDataName as before', async () => {
    const h = harness({ configDriveSource: async () => undefined });
    h.secrets.set('node-ud', { values: { userData: '#cloud-config\n' }, version: 1 });
    const { outcome } = await h.drive(host('provisioning').withImage().withSpec({ userDataName: 'node-ud' }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    const drive = h.fleet.machine('node-1').disk.written?.configDrive;
    expect(drive?.userDataSha256).toBe(sha256('#cloud-config\n'));
    expect(drive?.networkData).toBeUndefined();
  });

  it.each([
    ['an IngotError', new IngotError('INGOT_ERR_NOT_FOUND', 'Secret "ud" in project "p1" does not exist; create it')],
    ['a CredentialsProblem', new CredentialsProblem('secret ud (claim user data) has no userData; add it')],
  ])('%s from the source is a provisioning failure with its message', async (_what, error) => {
    const h = harness({ configDriveSource: async () => Promise.reject(error) });
    const { outcome } = await h.drive(host('provisioning').withImage());
    expect(outcome).toEqual({ kind: 'failed', errorType: 'provisioning', message: `the config drive for this host could not be prepared: ${error.message}` });
    expect(h.fleet.machine('node-1').disk.written).toBeUndefined();
  });

  it('any other error from the source is a bug: it propagates (the engine logs it and retries)', async () => {
    const h = harness({ configDriveSource: async () => Promise.reject(new TypeError('boom')) });
    await expect(h.drive(host('provisioning').withImage())).rejects.toThrow('boom');
  });

  it.each<[string, unknown, RegExp]>([
    ['network data that is not an object', { networkData: [1, 2] }, /networkData must be a JSON object/],
    ['user data that is not a string', { userData: 42 }, /userData must be a string/],
    ['user data over the bound', { userData: 'x'.repeat(CONFIG_DRIVE_LIMITS.userDataBytes + 1) }, /userData is larger than/],
    ['meta data over the bound', { metaData: { big: 'x'.repeat(CONFIG_DRIVE_LIMITS.metaDataBytes) } }, /metaData is larger than/],
    ['a secret use without a version', { userData: 'u', secretUse: { secretName: 'ud', secretProject: 'p1' } }, /secretUse needs/],
  ])('refuses %s as a provisioning failure', async (_what, content, message) => {
    const h = harness({ configDriveSource: async () => content as ConfigDriveContent });
    const { outcome } = await h.drive(host('provisioning').withImage());
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'provisioning', message: expect.stringMatching(message) });
    expect(h.fleet.machine('node-1').disk.written).toBeUndefined();
  });

  it('reports the secret the user data came from, as a user-data use with its project, never the value', async () => {
    const uses: SecretUseEvent[] = [];
    const h = harness({
      configDriveSource: async () => ({ userData: USER_DATA, secretUse: { secretName: 'web-ud', secretProject: 'team-a', secretVersion: 3 } }),
      reportSecretUse: (e) => uses.push(e),
    });
    const { outcome } = await h.drive(host('provisioning').withImage());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(uses).toEqual([{ secretName: 'web-ud', secretProject: 'team-a', secretVersion: 3, hostName: 'node-1', hostUid: 'uid-node-1', purpose: 'user-data', hostState: 'provisioning' }]);
    expect(JSON.stringify(uses)).not.toContain('tenant-box');
  });
});

describe('createConductor configDriveSource', () => {
  let store: Store | undefined;
  let conductor: Conductor | undefined;
  afterEach(async () => {
    await conductor?.stop();
    await store?.close();
  });

  it('is threaded to provisioning, and its secret use reaches onSecretUse (once) with the project', async () => {
    store = await openStore({ database: ':memory:' });
    const clock = createManualClock();
    const fleet = new FakeFleet({ now: () => clock.now(), random: () => 0 });
    const uses: SecretUseEvent[] = [];
    const seen: Host[] = [];
    conductor = createConductor({
      store,
      drivers: createDriverRegistry({ fake: fleet }),
      credentials: createSecretCredentialsResolver(async () => ({ values: { username: 'u', password: 'p' }, version: 1, uid: 's' })),
      clock,
      random: () => 0,
      holderId: 'test',
      onSecretUse: (e) => uses.push(e),
      configDriveSource: async (h) => {
        seen.push(h);
        return { userData: USER_DATA, networkData: NETWORK, secretUse: { secretName: 'web-ud', secretProject: 'team-a', secretVersion: 1 } };
      },
    });
    const spec: HostSpec = { bmc: { address: 'fake://node-1', credentialsName: 'bmc' }, online: true, image: { url: 'http://images.test/a.img', checksum: 'd'.repeat(64), checksumType: 'sha256' } };
    await store.create({ kind: 'Host', name: 'node-1', spec: spec as Record<string, unknown>, status: initialHostStatus(spec) as unknown as Record<string, unknown> });
    await conductor.start();
    const stateOf = async () => ((await store!.get({ kind: 'Host', name: 'node-1' }))?.status as unknown as HostStatus).provisioning.state;
    for (let i = 0; i < 5_000 && (await stateOf()) !== 'provisioned'; i++) {
      await new Promise((r) => setImmediate(r));
      await conductor.idle();
      clock.advance(1_000);
    }
    expect(await stateOf()).toBe('provisioned');
    expect(fleet.machine('node-1').disk.written?.configDrive?.networkData).toEqual(NETWORK);
    expect(seen.map((h) => h.metadata.name)).toEqual(['node-1']);
    const userDataUses = uses.filter((u) => u.purpose === 'user-data');
    expect(userDataUses).toEqual([expect.objectContaining({ secretName: 'web-ud', secretProject: 'team-a', secretVersion: 1, hostName: 'node-1', hostState: 'provisioning' })]);
    // The BMC credentials were reported too, through the same listener, without a project.
    expect(uses.some((u) => u.purpose === 'bmc-credentials' && u.secretProject === undefined)).toBe(true);
  });
});
