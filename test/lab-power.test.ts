// Honest power against the lab's Redfish BMCs with the real driver: a BMC that accepts the
// Reset action and never changes PowerState (the lab's ignorePower fault) gets one action per
// change and one escalation, then a power-management error naming the state it reports,
// never a storm of re-sent actions. Assertions wait for states (bounded polls), never for times.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollLab } from '../src/lab/enroll.js';
import { LabAdminClient } from '../src/lab/lab-fault-client.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { hostApi, inState } from './support/host-api.js';

let lab: LabHarness;
let admin: LabAdminClient;
let server: RunningServer;
let serverDir: string;
let token: string;

beforeAll(async () => {
  lab = await LabHarness.start({ hosts: 1, powerTransitionMs: 50, agents: { backoff: { initialMs: 50, maxMs: 500 }, commandWaitSeconds: 1 } });
  admin = await LabAdminClient.fromDataDir(lab.dataDir);
  serverDir = await mkdtemp(join(tmpdir(), 'ingot-lab-power-'));
  server = await runServer({
    dataDir: serverDir,
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    fake: false,
    log: 'silent',
    conductor: {
      pollMs: 50,
      resyncMs: 1_000,
      // Long enough that no automatic retry happens while the test counts the BMC's actions.
      backoff: { baseMs: 600_000, capMs: 600_000 },
      handler: { powerPollMs: 100, agentPollMs: 100, idleRecheckMs: 300, softPowerOffTimeoutMs: 1_500, powerChangeTimeoutMs: 1_500 },
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

const { api, patchHost, waitForHost } = hostApi(() => ({ apiUrl: server.apiUrl, token }));

describe('power against a BMC that accepts Reset and never changes PowerState', () => {
  it('power-off: one graceful action, one forced escalation, then a power-management error with the last state; a spec change recovers', { timeout: 180_000 }, async () => {
    const id = lab.sys(0);
    // 1. Enrolled and available, powered on while the BMC still obeys.
    await enrollLab({ dataDir: lab.dataDir, server: server.apiUrl, token, systems: [id] });
    await waitForHost(id, 'available', inState('available'));
    await patchHost(id, { spec: { online: true } });
    await waitForHost(id, 'powered on', (h) => h.status.poweredOn === true && h.status.stepState?.powerRequest === undefined);
    // 2. The BMC starts ignoring resets; the host is asked to power off.
    await admin.setFaults(id, { ignorePower: true });
    await patchHost(id, { spec: { online: false } });
    const failed = await waitForHost(id, 'a power-management error', (h) => h.status.errorType === 'power-management', 60_000);
    expect(failed.status.errorMessage).toMatch(/soft, then a hard, power-off request but the system still reports power on/);
    // 3. Exactly two actions reached the BMC: GracefulShutdown and ForceOff.
    expect((await admin.getFaults(id)).ignoredResets).toBe(2);
    expect(await lab.powerState(0)).toBe('On');
    const events = await api<{ items: Array<{ reason: string; type: string; message: string }> }>('GET', `/api/v1/hosts/${id}/events`);
    expect(events.body.items.filter((e) => e.reason === 'PowerEscalated')).toHaveLength(1);
    // 4. Asking for what the machine already is clears the error at once.
    await patchHost(id, { spec: { online: true } });
    const healed = await waitForHost(id, 'available without error', (h) => h.status.provisioning.state === 'available' && h.status.errorType === '');
    expect(healed.status.poweredOn).toBe(true);
    expect((await admin.getFaults(id)).ignoredResets).toBe(2);
  });
});
