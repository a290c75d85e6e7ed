// The lifecycle on lab hosts, end to end over real networks: a lab (HTTPS Redfish BMCs that boot
// the real agent from virtual media) and an Ingot server (SQLite in a temp dir, the real Redfish
// driver, the conductor, the agent API), joined only by
// `enrollLab` through the public API, as an operator would. Every check reads the result where
// it really is: host status through the API, power and faults through the lab.
// Assertions wait for states (bounded polls), never for times.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostApi, inState } from './support/host-api.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollLab, type EnrollResult } from '../src/lab/enroll.js';
import { LabAdminClient } from '../src/lab/lab-fault-client.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import { API_VERSION } from '../src/model/envelope.js';
import type { Host } from '../src/model/host.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { makeCa } from './support/test-pki.js';

const HOSTS = 4;
/** One more lab system than is enrolled: the wrong-CA host manages it alone (two hosts driving one machine's power would fight). */
const SPARE = HOSTS;
let lab: LabHarness;
let admin: LabAdminClient;
let server: RunningServer;
let serverDir: string;
let token: string;
let enrolled: EnrollResult;

beforeAll(async () => {
  lab = await LabHarness.start({ hosts: HOSTS + 1, powerTransitionMs: 50, agents: { backoff: { initialMs: 50, maxMs: 500 }, commandWaitSeconds: 1 } });
  admin = await LabAdminClient.fromDataDir(lab.dataDir);
  serverDir = await mkdtemp(join(tmpdir(), 'ingot-lab-lifecycle-'));
  server = await runServer({
    dataDir: serverDir,
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    fake: false,
    log: 'silent',
    conductor: {
      pollMs: 50,
      resyncMs: 1_000,
      backoff: { baseMs: 200, capMs: 1_000 },
      handler: { powerPollMs: 100, agentPollMs: 100, idleRecheckMs: 300, deletePowerOffAttempts: 3 },
    },
  });
  token = server.bootstrapToken!;
});

afterAll(async () => {
  await server?.close();
  await admin?.close();
  await lab?.stop();
  if (serverDir) await rm(serverDir, { recursive: true, force: true });
});

// ---- the API over real HTTP --------------------------------------------------------------------

const { api, getHost, patchHost, waitForHost } = hostApi(() => ({ apiUrl: server.apiUrl, token }));

async function putSecret(name: string, stringData: Record<string, string>): Promise<void> {
  const r = await api('PUT', `/api/v1/secrets/${name}`, { apiVersion: API_VERSION, kind: 'Secret', metadata: { name }, stringData });
  expect([200, 201], JSON.stringify(r.body)).toContain(r.status);
}

async function waitForPower(i: number, state: 'On' | 'Off'): Promise<void> {
  await lab.until(`lab system ${lab.sys(i)} power ${state}`, async () => ((await lab.powerState(i)) === state ? true : undefined), 30_000);
}

// ---- the lifecycle ----------------------------------------------------------------------------

describe('lab hosts through the lifecycle', () => {
  it('enrolled hosts register over Redfish, are inspected by the agent booted from virtual media and become available (a 5xx burst is retried)', async () => {
    // 1. The last system's BMC answers its next 5 requests with 503: registration must ride it out.
    await admin.setFaults(lab.sys(HOSTS - 1), { errorBurst: 5, errorStatus: 503 });
    // 2. Enroll: a CA secret, then a Secret and a Host per system.
    const ids = lab.lab.systems.slice(0, HOSTS).map((s) => s.id);
    enrolled = await enrollLab({ dataDir: lab.dataDir, server: server.apiUrl, token, systems: ids });
    expect(enrolled.hosts.map((h) => h.name)).toEqual([...ids].sort());
    // 3. Every host reaches available with the lab's hardware in status.
    for (let i = 0; i < HOSTS; i++) {
      const id = lab.sys(i);
      const host = await waitForHost(id, 'available', inState('available'));
      const system = (await lab.as(i, 'GET', `/redfish/v1/Systems/${id}`)).body;
      const detail = (await admin.getSystem(id)) as { macs: string[]; disks: Array<{ sizeBytes: number }> };
      const hw = host.status.hardware!;
      expect(hw.cpu?.count).toBe(system.ProcessorSummary.Count);
      expect(hw.ramMebibytes).toBe(Math.round(system.MemorySummary.TotalSystemMemoryGiB * 1024));
      expect(hw.nics?.map((n) => n.mac).sort()).toEqual([...detail.macs].map((m) => m.toLowerCase()).sort());
      expect(hw.storage?.map((d) => d.sizeBytes).sort()).toEqual(detail.disks.map((d) => d.sizeBytes).sort());
      expect(typeof hw.secureBootCapable).toBe('boolean');
      // In-band: the machine booted the agent medium from virtual CD and the agent ran as it.
      const cdBoot = lab.lab.fleet.get(id)!.bootLog.find((b) => b.source === 'cd');
      expect(cdBoot?.agent).toMatchObject({ started: true, hostUid: host.metadata.uid });
      expect(host.spec.bootMACAddress).toBe(detail.macs[0]!.toLowerCase());
      expect(host.status.goodCredentials?.name).toBe(`${id}-bmc`);
      // The path it took, from the events written with each transition.
      const events = await api<{ items: Array<{ reason: string; fromState?: string; toState?: string }> }>('GET', `/api/v1/hosts/${id}/events`);
      const path = events.body.items.filter((e) => e.reason === 'StateChanged').map((e) => `${e.fromState}>${e.toState}`);
      expect(path, JSON.stringify(events.body.items.map((e) => (e as { message?: string }).message))).toEqual(["registering>inspecting", "inspecting>preparing", "preparing>available"]);
    }
    // 4. The burst was really served (and so retried past).
    expect((await admin.getFaults(lab.sys(HOSTS - 1))).errorBurst).toBe(0);
  });

  it('spec.online really powers the lab system on, and off again', async () => {
    const id = lab.sys(0);
    expect(await lab.powerState(0)).toBe('Off');
    await patchHost(id, { spec: { online: true } });
    await waitForPower(0, 'On');
    await waitForHost(id, 'poweredOn', (h) => h.status.poweredOn === true);
    await patchHost(id, { spec: { online: false } });
    await waitForPower(0, 'Off');
    const host = await waitForHost(id, 'powered off', (h) => h.status.poweredOn === false);
    expect(host.status.provisioning.state).toBe('available');
  });

  it('credentials rotated on both sides: the BMC change is a power-management error naming the secret; the Secret update recovers it', async () => {
    const id = lab.sys(1);
    const secretName = `${id}-bmc`;
    // 1. The password changes at the BMC; the host's next BMC call (the idle recheck) fails.
    const changed = await admin.changePassword(id);
    const failed = await waitForHost(id, 'a power-management error', (h) => h.status.errorType === 'power-management');
    expect(failed.status.errorMessage).toContain(`Secret "${secretName}" (spec.bmc.credentialsName)`);
    expect(failed.status.errorMessage).toContain('rejected the credentials (HTTP 401)');
    expect(failed.status.errorMessage).not.toContain(changed.password);
    // 2. The same change in Ingot: a new Secret version.
    await putSecret(secretName, { username: changed.username, password: changed.password });
    const healed = await waitForHost(id, 'available without error', (h) => h.status.provisioning.state === 'available' && h.status.errorType === '');
    expect(healed.status.errorCount).toBe(0);
    // 3. And it really manages the machine with the new password.
    await patchHost(id, { spec: { online: true } });
    await waitForPower(1, 'On');
  });

  it('a wrong CA is a registration error saying what to set; disabling verification registers with a warning condition', async () => {
    const other = makeCa('not-the-lab');
    await putSecret('other-ca', { 'ca.crt': other.certPem });
    const spare = lab.lab.systems[SPARE]!;
    await putSecret('spare-bmc', { username: spare.username, password: spare.password });
    const address = enrolled.hosts[0]!.address.replace(/Systems\/[^/]+$/, `Systems/${spare.id}`);
    const r = await api('PUT', '/api/v1/hosts/wrong-ca', {
      apiVersion: API_VERSION,
      kind: 'Host',
      metadata: { name: 'wrong-ca' },
      spec: { bmc: { address, credentialsName: 'spare-bmc', caBundleName: 'other-ca' }, bootMACAddress: spare.bootMac, online: false },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    // 1. Registration fails on the certificate, and says so.
    const failed = await waitForHost('wrong-ca', 'a registration error', (h) => h.status.errorType === 'registration');
    expect(failed.status.provisioning.state).toBe('error');
    expect(failed.status.errorMessage).toMatch(/TLS verification of the BMC at https:\/\/127\.0\.0\.1:\d+\S* failed/);
    expect(failed.status.errorMessage).toContain('spec.bmc.caBundleName');
    expect(failed.status.errorMessage).toContain('disableCertificateVerification');
    // 2. Verification off (the spec change retries at once): registers, with the condition.
    await patchHost('wrong-ca', { spec: { bmc: { disableCertificateVerification: true } } });
    const registered = await waitForHost('wrong-ca', 'past registration', (h) => ['inspecting', 'preparing', 'available'].includes(h.status.provisioning.state));
    expect(registered.status.conditions).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'CertificateVerificationDisabled', status: 'True' })]));
    await waitForHost('wrong-ca', 'available', inState('available'));
    await rm(other.dir, { recursive: true, force: true });
  });

  it('delete powers the lab system off and removes the host', async () => {
    const id = lab.sys(0);
    await patchHost(id, { spec: { online: true } });
    await waitForPower(0, 'On');
    const r = await api('DELETE', `/api/v1/hosts/${id}`);
    expect(r.status).toBe(202);
    await lab.until(`host ${id} removed`, async () => ((await getHost(id)) === undefined ? true : undefined), 30_000);
    expect(await lab.powerState(0)).toBe('Off');
  });
});
