// Handler table (STYLE 12): each row builds a host, scripts the fake fleet, runs the state's
// handler (once, or driven until it settles, as the engine would) and checks the outcome.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveCapabilities } from '../../model/capabilities.js';
import { FORCE_DELETE_ANNOTATION, HOST_STATES, type HostState } from '../../model/host.js';
import type { Outcome } from '../outcome.js';
import { DELETION_STATES } from '../transitions.js';
import { CERT_VERIFICATION_DISABLED } from './registering.js';
import { harness, host, IMAGE, OTHER_IMAGE, withoutAgent, type Harness, type HostBuilder } from './test-kit.js';
import type { DriverRegistry } from '../../drivers/registry.js';
import type { HandlerConfig } from './types.js';
import type { Host } from '../../model/host.js';

interface Row {
  name: string;
  given: () => HostBuilder;
  /** Scripts the fleet / secrets before the run. */
  arrange?: (h: Harness) => void;
  /** once: a single handler run; drive: until it settles. */
  mode?: 'once' | 'drive';
  expect: Partial<Outcome> & { message?: unknown; cause?: unknown };
  then?: (result: { host: Host; outcome: Outcome }, h: Harness) => void | Promise<void>;
  /** Replaces the harness's driver registry (e.g. withoutAgent). */
  drivers?: (base: DriverRegistry) => DriverRegistry;
  /** Handler config beside the harness's defaults. */
  config?: Partial<HandlerConfig>;
}

function table(rows: Row[]) {
  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_name, row) => {
    const h = harness({ ...(row.drivers ? { drivers: row.drivers } : {}), ...(row.config ? { config: row.config } : {}) });
    row.arrange?.(h);
    const result = row.mode === 'drive' ? await h.drive(row.given()) : await h.run(row.given());
    expect(result.outcome).toMatchObject(row.expect);
    await row.then?.(result, h);
  });
}

describe('registering', () => {
  table([
    {
      name: 'healthy host registers and records the credentials version',
      given: () => host('registering'),
      expect: { kind: 'advance', event: 'registered' },
      then: ({ host }) => expect(host.status.goodCredentials).toEqual({ name: 'node-bmc', version: 1 }),
    },
    {
      name: 'externally provisioned host is managed, not inspected',
      given: () => host('registering').withSpec({ externallyProvisioned: true }),
      expect: { kind: 'advance', event: 'manage' },
    },
    {
      name: 'missing secret is a registration error that says how to create it',
      given: () => host('registering'),
      arrange: (h) => h.secrets.delete('node-bmc'),
      expect: { kind: 'failed', errorType: 'registration', message: expect.stringContaining('secret node-bmc (spec.bmc.credentialsName) does not exist; create it with `ingot secret create node-bmc') },
    },
    {
      name: 'secret without a password is a registration error naming the key',
      given: () => host('registering'),
      arrange: (h) => h.secrets.set('node-bmc', { values: { username: 'admin' }, version: 2 }),
      expect: { kind: 'failed', errorType: 'registration', message: expect.stringContaining('has no password') },
    },
    {
      name: 'wrong password: registration error with the driver message, remembering the version tried',
      given: () => host('registering', 'bad-credentials-1'),
      expect: { kind: 'failed', errorType: 'registration', message: expect.stringContaining('rejected the username or password'), remember: { credentialsVersion: 1 } },
    },
    {
      name: 'BMC refuses: registration error',
      given: () => host('registering', 'fail-register-1'),
      expect: { kind: 'failed', errorType: 'registration', message: expect.stringContaining('refused registration') },
    },
    {
      name: 'BMC unreachable: retry, no error state',
      given: () => host('registering'),
      arrange: (h) => h.fleet.failNext('node-1', 'identify', 'timeout'),
      expect: { kind: 'retry', cause: expect.stringContaining('timed out') },
    },
    {
      name: 'boot MAC not on the system: registration error naming both',
      given: () => host('registering').withSpec({ bootMACAddress: '52:54:00:00:00:01' }),
      expect: { kind: 'failed', errorType: 'registration', message: expect.stringMatching(/52:54:00:00:00:01 is not a NIC .*\(it reports [0-9a-f:]+/) },
    },
    {
      name: 'certificate verification disabled: condition True and one Warning event',
      given: () => host('registering').withSpec({ bmc: { address: 'fake://node-1', credentialsName: 'node-bmc', disableCertificateVerification: true } }),
      expect: { kind: 'advance', event: 'registered', events: [expect.objectContaining({ type: 'Warning', reason: CERT_VERIFICATION_DISABLED })] },
      then: ({ host }) => expect(host.status.conditions).toEqual([expect.objectContaining({ type: CERT_VERIFICATION_DISABLED, status: 'True' })]),
    },
    {
      name: 'driver not enabled for the scheme: registration error saying so',
      given: () => host('registering').withSpec({ bmc: { address: 'ipmi://10.0.0.9', credentialsName: 'node-bmc' } }),
      expect: { kind: 'failed', errorType: 'registration', message: expect.stringContaining('ipmi driver is not enabled') },
    },
  ]);

  it('accepts the boot MAC the BMC reports', async () => {
    const h = harness();
    const mac = h.fleet.machine('node-1').inventory.nics![0]!.mac;
    const { outcome } = await h.run(host('registering').withSpec({ bootMACAddress: mac.toUpperCase() }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'registered' });
  });
});

describe('inspecting', () => {
  table([
    {
      name: 'boots the agent, records the inventory, powers off, advances (cleaning disabled: nothing follows)',
      given: () => host('inspecting').withSpec({ automatedCleaningMode: 'disabled' }),
      mode: 'drive',
      expect: { kind: 'advance', event: 'inspected' },
      then: ({ host }, h) => {
        expect(host.status.hardware?.cpu?.count).toBeGreaterThan(0);
        expect(host.status.capabilities).toEqual(deriveCapabilities(host.status.hardware));
        expect(host.status.capabilities?.secureBoot).toBe(h.fleet.machine('node-1').secureBootCapable);
        expect(host.status.poweredOn).toBe(false);
        const m = h.fleet.machine('node-1');
        expect(m.power).toBe('off');
        expect(m.agent.sessionsFinished).toBe(1);
        expect(Object.values(m.operations).map((o) => o.kind)).toEqual(['inspect']);
      },
    },
    {
      name: 'cleaning follows: the agent stays up and its session is handed to preparing, which cleans without a second boot',
      given: () => host('inspecting'),
      mode: 'drive',
      expect: { kind: 'advance', event: 'inspected', carry: expect.objectContaining({ agentBootVia: 'network' }) },
      then: async ({ host: inspected }, h) => {
        const m = h.fleet.machine('node-1');
        expect(m.power).toBe('on');
        expect(m.agent.sessionsFinished).toBe(0);
        const prepared = host('preparing').withStatus({ ...inspected.status, provisioning: { state: 'preparing' }, stepState: { agentBootRequestedAt: h.clock.now(), agentBootVia: 'network' } });
        const { outcome } = await h.drive(prepared);
        expect(outcome).toMatchObject({ kind: 'advance', event: 'prepared' });
        const after = h.fleet.machine('node-1');
        expect(after.disk.cleans.map((c) => c.mode)).toEqual(['metadata']);
        expect(after.bootCount).toBe(m.bootCount);
        expect(after.agent.sessionsFinished).toBe(1);
        expect(after.power).toBe('off');
      },
    },
    {
      name: 'agent reports failure: inspection error',
      given: () => host('inspecting', 'fail-inspect-1'),
      mode: 'drive',
      expect: { kind: 'failed', errorType: 'inspection', message: expect.stringContaining('could not read the hardware inventory') },
    },
    {
      name: 'agent never checks in: inspection error after the boot timeout, suggesting spec.inspection: bmc',
      given: () => host('inspecting'),
      arrange: (h) => h.fleet.failNext('node-1', 'inspect', 'timeout', 1000),
      mode: 'drive',
      expect: { kind: 'failed', errorType: 'inspection', message: expect.stringMatching(/^the agent never checked in: nothing looked up within 30 s of booting the host into the agent; check that the host network-boots.*set spec\.inspection: bmc/) },
    },
    {
      name: 'spec.inspection bmc: the BMC inventory, no agent booted, power untouched',
      given: () => host('inspecting').withSpec({ inspection: 'bmc' }),
      mode: 'drive',
      expect: { kind: 'advance', event: 'inspected', message: expect.stringContaining('out-of-band') },
      then: ({ host }, h) => {
        const m = h.fleet.machine('node-1');
        expect(host.status.hardware?.cpu).toEqual(m.inventory.cpu);
        expect(m.operations).toEqual({});
        expect(m.agent.sessionsFinished).toBe(0);
      },
    },
    {
      name: 'spec.inspection disabled: advances without touching the BMC or the hardware record',
      given: () => host('inspecting').withSpec({ inspection: 'disabled' }),
      arrange: (h) => h.fleet.failNext('node-1', 'boot', 'refused', 100),
      expect: { kind: 'advance', event: 'inspected', message: expect.stringContaining('inspection disabled') },
      then: ({ host }) => expect(host.status.hardware).toBeUndefined(),
    },
    {
      name: 'server default bmc applies to hosts without spec.inspection',
      given: () => host('inspecting'),
      config: { defaultInspection: 'bmc' },
      mode: 'drive',
      expect: { kind: 'advance', event: 'inspected', message: expect.stringContaining('out-of-band') },
    },
    {
      name: 'BMC refuses power: inspection error',
      given: () => host('inspecting'),
      arrange: (h) => h.fleet.failNext('node-1', 'boot', 'refused'),
      expect: { kind: 'failed', errorType: 'inspection' },
    },
    {
      name: 'BMC unreachable: retry',
      given: () => host('inspecting'),
      arrange: (h) => h.fleet.failNext('node-1', 'boot', 'timeout'),
      expect: { kind: 'retry' },
    },
    {
      name: 'credentials secret deleted after registration: retry (waits for the fix), no error state',
      given: () => host('inspecting'),
      arrange: (h) => h.secrets.delete('node-bmc'),
      expect: { kind: 'retry', cause: expect.stringContaining('does not exist') },
    },
  ]);

  it('saves the operation id before starting the operation, and resumes it after a restart', async () => {
    const h = harness();
    // 1. Drive until the agent operation is started, keeping the status the engine would save.
    let current = host('inspecting').build();
    for (;;) {
      const { outcome, host: edited } = await h.run(current);
      if (outcome.kind === 'save') {
        const hadId = typeof current.status.stepState?.operationId === 'string';
        current = edited;
        // The id appears in a save of its own, before any operation exists on the machine.
        if (!hadId && typeof current.status.stepState?.operationId === 'string') {
          expect(Object.keys(h.fleet.machine('node-1').operations)).toEqual([]);
        }
        if (current.status.stepState?.agentStarted) break;
      } else if (outcome.kind === 'wait') h.clock.advance(outcome.afterMs);
      else throw new Error(`unexpected ${outcome.kind}`);
    }
    const id = current.status.stepState!.operationId as string;
    // 2. A "new conductor" picks up the saved status: it polls the same operation to the end.
    const { outcome } = await h.drive(current);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'inspected' });
    expect(Object.keys(h.fleet.machine('node-1').operations)).toEqual([id]);
  });

  it('reports progress while the agent runs', async () => {
    const h = harness();
    const { kinds, host: done } = await h.drive(host('inspecting'));
    expect(kinds.filter((k) => k === 'save').length).toBeGreaterThan(3);
    expect(done.status.progress).toBeUndefined();
  });
});

describe('preparing', () => {
  table([
    {
      name: 'first enrolment: the disks are cleaned before the host is first available',
      given: () => host('preparing'),
      mode: 'drive',
      expect: { kind: 'advance', event: 'prepared', message: expect.stringMatching(/^cleaned \(metadata\)/) },
      then: (_r, h) => expect(h.fleet.machine('node-1').disk.cleans.map((c) => c.mode)).toEqual(['metadata']),
    },
    {
      name: 'cleaning disabled (the admin says the disks are known clean): prepared at once',
      given: () => host('preparing').withSpec({ automatedCleaningMode: 'disabled' }),
      expect: { kind: 'advance', event: 'prepared', message: 'cleaning disabled by spec.automatedCleaningMode' },
    },
    {
      name: 'no agent for this host: a preparation error naming the way out, nothing booted',
      given: () => host('preparing'),
      drivers: withoutAgent,
      expect: { kind: 'failed', errorType: 'preparation', message: expect.stringMatching(/cleaning needs the Ingot agent; .*automatedCleaningMode: disabled/) },
    },
  ]);
});

describe('available', () => {
  table([
    { name: 'image set: provision', given: () => host('available').withImage(), expect: { kind: 'advance', event: 'provision' } },
    { name: 'externallyProvisioned set: adopt', given: () => host('available').withSpec({ externallyProvisioned: true }), expect: { kind: 'advance', event: 'adopt' } },
    { name: 'off and spec offline: rests', given: () => host('available'), expect: { kind: 'wait', afterMs: 60_000 } },
    {
      name: 'spec online: powers on, records it, rests',
      given: () => host('available').online(),
      mode: 'drive',
      expect: { kind: 'wait', afterMs: 60_000 },
      then: ({ host }, h) => {
        expect(host.status.poweredOn).toBe(true);
        expect(h.fleet.machine('node-1').power).toBe('on');
      },
    },
    {
      name: 'BMC refuses power: power-management error',
      given: () => host('available', 'fail-power-1').online(),
      expect: { kind: 'failed', errorType: 'power-management', message: expect.stringContaining('refused the power request') },
    },
    { name: 'BMC unreachable: retry', given: () => host('available').online(), arrange: (h) => h.fleet.failNext('node-1', 'power', 'timeout'), expect: { kind: 'retry' } },
    {
      name: 'a power reconcile that works clears a leftover power-management error',
      given: () => host('available').withStatus({ errorType: 'power-management', errorMessage: 'x', errorCount: 3 }),
      expect: { kind: 'save' },
      then: ({ host }) => expect([host.status.errorType, host.status.errorCount]).toEqual(['', 0]),
    },
  ]);

  it('spec offline on a running host: asks softly once, and the request is recorded', async () => {
    const h = harness();
    h.fleet.setPower('node-1', 'on');
    h.clock.advance(1_000);
    // 1. soft request recorded
    const first = await h.run(host('available').poweredOn());
    expect(first.outcome).toMatchObject({ kind: 'save' });
    expect(first.host.status.stepState?.powerRequest).toEqual({ want: 'off', mode: 'soft', at: h.clock.now(), escalated: false });
    // 2. driven to off (the fake treats soft like hard)
    const { host: rested } = await h.drive(first.host);
    expect(rested.status.poweredOn).toBe(false);
    expect(h.fleet.machine('node-1').power).toBe('off');
    expect(rested.status.stepState?.powerRequest).toBeUndefined();
  });

  describe('a BMC that accepts power requests and never acts on them', () => {
    /** The fake driver, with power.set recorded and ignored (the BMC answers 204 and does nothing). */
    function stuckBmc() {
      const requests: Array<{ state: string; mode: string }> = [];
      const h = harness({
        config: { softPowerOffTimeoutMs: 60_000, powerChangeTimeoutMs: 30_000 },
        drivers: (base) => ({
          ...base,
          driverFor(address) {
            const d = base.driverFor(address);
            return { ...d, power: { ...d.power, async set(_t, r) { requests.push({ state: r.state, mode: r.mode }); } } };
          },
        }),
      });
      return { h, requests };
    }

    it('power-off: one soft request, one hard escalation after the timeout, then a power-management error with the state seen', async () => {
      const { h, requests } = stuckBmc();
      h.fleet.setPower('node-1', 'on');
      let current = (await h.run(host('available').poweredOn())).host;
      const outcomes: string[] = [];
      const events: string[] = [];
      for (let i = 0; i < 400; i++) {
        h.clock.advance(500);
        const r = await h.run(current);
        current = r.host;
        outcomes.push(r.outcome.kind);
        if ('events' in r.outcome && r.outcome.events) events.push(...r.outcome.events.map((e) => e.reason));
        if (r.outcome.kind === 'failed') {
          expect(r.outcome.errorType).toBe('power-management');
          expect(r.outcome.message).toMatch(/soft, then a hard, power-off request but the system still reports power on/);
          break;
        }
      }
      expect(outcomes.at(-1)).toBe('failed');
      expect(requests).toEqual([{ state: 'off', mode: 'soft' }, { state: 'off', mode: 'hard' }]);
      expect(events).toEqual(['PowerEscalated']);
    });

    it('power-on: one request, no re-sends while waiting, then a power-management error', async () => {
      const { h, requests } = stuckBmc();
      let current = (await h.run(host('available').online())).host;
      let last;
      for (let i = 0; i < 200; i++) {
        h.clock.advance(500);
        last = await h.run(current);
        current = last.host;
        if (last.outcome.kind === 'failed') break;
      }
      expect(last!.outcome).toMatchObject({ kind: 'failed', errorType: 'power-management', message: expect.stringContaining('still reports power off') });
      expect(requests).toEqual([{ state: 'on', mode: 'hard' }]);
    });
  });
});

describe('provisioning', () => {
  table([
    {
      name: 'writes the image and config drive, boots from disk, powers on for spec.online',
      given: () => host('provisioning').withImage().online(),
      mode: 'drive',
      expect: { kind: 'advance', event: 'provisioned' },
      then: ({ host }, h) => {
        const m = h.fleet.machine('node-1');
        expect(m.disk.written?.image.url).toBe(IMAGE.url);
        expect(m.disk.written?.configDrive?.metaData).toMatchObject({ uuid: 'uid-node-1', name: 'node-1' });
        expect(m.disk.written?.configDrive?.userDataSha256).toBeUndefined();
        expect(m.bootDevice.persistent).toBe('hdd');
        expect(m.power).toBe('on');
        expect(m.lastBoot?.from).toBe('hdd');
        expect(host.status.provisioning.image).toEqual(IMAGE);
        expect(host.status.poweredOn).toBe(true);
      },
    },
    {
      name: 'spec offline: ends powered off',
      given: () => host('provisioning').withImage(),
      mode: 'drive',
      expect: { kind: 'advance', event: 'provisioned' },
      then: (_r, h) => expect(h.fleet.machine('node-1').power).toBe('off'),
    },
    {
      name: 'user data from spec.userDataName reaches the config drive',
      given: () => host('provisioning').withImage().withSpec({ userDataName: 'node-ud' }),
      arrange: (h) => h.secrets.set('node-ud', { values: { userData: '#cloud-config\n' }, version: 1 }),
      mode: 'drive',
      expect: { kind: 'advance', event: 'provisioned' },
      then: (_r, h) => expect(h.fleet.machine('node-1').disk.written?.configDrive?.userDataSha256).toBe(createHash('sha256').update('#cloud-config\n').digest('hex')),
    },
    {
      name: 'user data secret missing: waits for it (retry), no error state',
      given: () => host('provisioning').withImage().withSpec({ userDataName: 'node-ud' }),
      mode: 'drive',
      expect: { kind: 'retry', cause: expect.stringContaining('secret node-ud (spec.userDataName) does not exist') },
    },
    {
      name: 'agent deploy fails: provisioning error',
      given: () => host('provisioning', 'fail-provision-1').withImage(),
      mode: 'drive',
      expect: { kind: 'failed', errorType: 'provisioning', message: expect.stringContaining('does not match') },
    },
    {
      name: 'no disk matches the root device hints: provisioning error',
      given: () => host('provisioning').withImage().withSpec({ rootDeviceHints: { minSizeGigabytes: 1_000_000 } }),
      mode: 'drive',
      expect: { kind: 'failed', errorType: 'provisioning', message: expect.stringContaining('rootDeviceHints') },
    },
    {
      name: 'image removed before the step started: provisioning error',
      given: () => host('provisioning'),
      expect: { kind: 'failed', errorType: 'provisioning' },
    },
  ]);

  it('an image edited mid-deploy does not change the deploy in progress', async () => {
    const h = harness();
    const first = await h.run(host('provisioning').withImage());
    expect(first.outcome.kind).toBe('save');
    first.host.spec.image = OTHER_IMAGE;
    const { outcome } = await h.drive(first.host);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(h.fleet.machine('node-1').disk.written?.image.url).toBe(IMAGE.url);
  });
});

describe('provisioned', () => {
  table([
    { name: 'image removed: deprovision', given: () => host('provisioned').provisionedWith(), expect: { kind: 'advance', event: 'deprovision' } },
    {
      name: 'image changed: deprovision first',
      given: () => host('provisioned').withImage(OTHER_IMAGE).provisionedWith(IMAGE),
      expect: { kind: 'advance', event: 'deprovision', message: expect.stringContaining('cleaning before provisioning') },
    },
    { name: 'same image, offline and off: rests', given: () => host('provisioned').withImage().provisionedWith(), expect: { kind: 'wait', afterMs: 60_000 } },
    {
      name: 'same image, spec online: powers on',
      given: () => host('provisioned').withImage().provisionedWith().online(),
      mode: 'drive',
      expect: { kind: 'wait', afterMs: 60_000 },
      then: (_r, h) => expect(h.fleet.machine('node-1').power).toBe('on'),
    },
    { name: 'BMC refuses power: power-management error', given: () => host('provisioned', 'fail-power-2').withImage().provisionedWith().online(), expect: { kind: 'failed', errorType: 'power-management' } },
  ]);
});

describe('deprovisioning', () => {
  table([
    {
      name: 'cleans (metadata by default), powers off, forgets the image',
      given: () => host('deprovisioning').provisionedWith(),
      mode: 'drive',
      expect: { kind: 'advance', event: 'deprovisioned', message: 'cleaned (metadata)' },
      then: ({ host }, h) => {
        const m = h.fleet.machine('node-1');
        expect(m.disk.cleans.map((c) => c.mode)).toEqual(['metadata']);
        expect(m.power).toBe('off');
        expect(host.status.provisioning.image).toBeUndefined();
      },
    },
    {
      name: 'full cleaning when asked',
      given: () => host('deprovisioning').provisionedWith().withSpec({ automatedCleaningMode: 'full' }),
      mode: 'drive',
      expect: { kind: 'advance', event: 'deprovisioned' },
      then: (_r, h) => expect(h.fleet.machine('node-1').disk.cleans.map((c) => c.mode)).toEqual(['full']),
    },
    {
      name: 'cleaning disabled: no agent, just power off',
      given: () => host('deprovisioning').provisionedWith().withSpec({ automatedCleaningMode: 'disabled' }),
      mode: 'drive',
      expect: { kind: 'advance', event: 'deprovisioned' },
      then: (_r, h) => {
        expect(h.fleet.machine('node-1').disk.cleans).toEqual([]);
        expect(h.fleet.machine('node-1').operations).toEqual({});
      },
    },
    {
      name: 'clean fails: deprovisioning error (never available)',
      given: () => host('deprovisioning', 'fail-clean-1').provisionedWith(),
      mode: 'drive',
      expect: { kind: 'failed', errorType: 'deprovisioning', message: expect.stringContaining('did not finish erasing') },
    },
  ]);
});

describe('externally-provisioned and unmanaged', () => {
  table([
    { name: 'externally provisioned: power only', given: () => host('externally-provisioned').withSpec({ externallyProvisioned: true }), expect: { kind: 'wait', afterMs: 60_000 } },
    { name: 'flag cleared: inspect', given: () => host('externally-provisioned'), expect: { kind: 'advance', event: 'inspect' } },
    { name: 'unmanaged without BMC: nothing to do', given: () => host('unmanaged').withoutBmc(), expect: { kind: 'wait' } },
    { name: 'unmanaged given a BMC: register', given: () => host('unmanaged'), expect: { kind: 'advance', event: 'register' } },
  ]);
});

describe('error', () => {
  table([
    { name: 'backoff not over: waits the rest', given: () => host('error').failed('inspection', { from: 'inspecting', dueInMs: 5_000 }), expect: { kind: 'wait', afterMs: 5_000 } },
    { name: 'inspection: back to inspecting', given: () => host('error').failed('inspection', { from: 'inspecting', dueInMs: 0 }), expect: { kind: 'advance', event: 'retry', to: 'inspecting' } },
    {
      name: 'inspection failed inspectionAttempts times: stays in error though the backoff is over',
      given: () => host('error').failed('inspection', { from: 'inspecting', dueInMs: 0, count: 5 }),
      expect: { kind: 'wait' },
    },
    {
      name: 'inspection given up, then the spec changes (spec.inspection: bmc): retries at once',
      given: () => {
        const b = host('error').failed('inspection', { from: 'inspecting', dueInMs: 0, count: 5 });
        b.spec = { ...b.spec, inspection: 'bmc' };
        return b;
      },
      expect: { kind: 'advance', event: 'retry', to: 'inspecting' },
    },
    { name: 'preparation: back to preparing', given: () => host('error').failed('preparation', { from: 'preparing', dueInMs: 0 }), expect: { kind: 'advance', event: 'retry', to: 'preparing' } },
    { name: 'provisioning: back to provisioning', given: () => host('error').withImage().failed('provisioning', { from: 'provisioning', dueInMs: 0 }), expect: { kind: 'advance', event: 'retry', to: 'provisioning' } },
    {
      name: 'provisioning, spec.image removed (claim released): cleaned at once, without waiting for the backoff',
      given: () => host('error').failed('provisioning', { from: 'provisioning', dueInMs: 60_000 }),
      expect: { kind: 'advance', event: 'retry', to: 'deprovisioning' },
    },
    { name: 'deprovisioning: back to deprovisioning, never to available', given: () => host('error').failed('deprovisioning', { from: 'deprovisioning', dueInMs: 0 }), expect: { kind: 'advance', event: 'retry', to: 'deprovisioning' } },
    { name: 'power-management: back to the resting state it left', given: () => host('error').failed('power-management', { from: 'provisioned', dueInMs: 0 }), expect: { kind: 'advance', event: 'retry', to: 'provisioned' } },
    {
      name: 'power-management: a spec change retries before the backoff is over',
      given: () => {
        const b = host('error').failed('power-management', { from: 'available', dueInMs: 600_000 });
        b.spec = { ...b.spec, online: true };
        return b;
      },
      expect: { kind: 'advance', event: 'retry', to: 'available' },
    },
    { name: 'power-management: same spec waits for the backoff', given: () => host('error').failed('power-management', { from: 'available', dueInMs: 600_000 }), expect: { kind: 'wait' } },
    { name: 'registration, same credentials, backoff running: waits', given: () => host('error').failed('registration', { credentialsVersion: 1 }), expect: { kind: 'wait', afterMs: 60_000 } },
    {
      name: 'registration, secret has a new version: retries at once',
      given: () => host('error').failed('registration', { credentialsVersion: 1 }),
      arrange: (h) => h.secrets.set('node-bmc', { values: { username: 'admin', password: 'new' }, version: 2 }),
      expect: { kind: 'advance', event: 'retry', to: 'registering' },
    },
    {
      name: 'registration, secret created after it was missing: retries at once',
      given: () => host('error').failed('registration'),
      expect: { kind: 'advance', event: 'retry', to: 'registering' },
    },
    {
      name: 'registration, spec changed since the failure: retries at once',
      given: () => {
        const b = host('error').failed('registration', { credentialsVersion: 1 });
        b.spec.bootMACAddress = '52:54:00:00:00:02';
        return b;
      },
      expect: { kind: 'advance', event: 'retry', to: 'registering' },
    },
    {
      name: 'an inspection error does not retry early on a new secret version',
      given: () => host('error').failed('inspection', { from: 'inspecting', credentialsVersion: 1 }),
      arrange: (h) => h.secrets.set('node-bmc', { values: { username: 'a', password: 'b' }, version: 9 }),
      expect: { kind: 'wait' },
    },
  ]);
});

describe('deletion', () => {
  // Hosts whose disks may hold a tenant's data are cleaned on the way out (rows below).
  const states = HOST_STATES.filter((s) => !DELETION_STATES.has(s) && !['provisioning', 'provisioned', 'deprovisioning'].includes(s));
  it.each(states)('%s with a deletion timestamp: delete', async (state: HostState) => {
    const h = harness();
    const { outcome } = await h.run(host(state).deleted());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'delete' });
  });

  table([
    { name: 'provisioned, deleted: deprovisions (cleans) first', given: () => host('provisioned').provisionedWith().deleted(), expect: { kind: 'advance', event: 'deprovision', message: 'deletion requested: cleaning the disks first' } },
    { name: 'provisioning, deleted: deprovisions (cleans) first', given: () => host('provisioning').withImage().deleted(), expect: { kind: 'advance', event: 'deprovision' } },
    { name: 'provisioned with cleaning disabled, deleted: straight to delete', given: () => host('provisioned').provisionedWith().withSpec({ automatedCleaningMode: 'disabled' }).deleted(), expect: { kind: 'advance', event: 'delete' } },
    { name: 'deprovisioning, deleted: the cleaning goes on', given: () => host('deprovisioning').provisionedWith().deleted(), expect: { kind: 'save' } },
    {
      name: 'deprovisioning, deleted, cleaned: available, then the delete',
      given: () => host('deprovisioning').provisionedWith().deleted(),
      mode: 'drive',
      expect: { kind: 'advance', event: 'deprovisioned', message: expect.stringMatching(/^cleaned \(metadata\)/) },
      then: (_r, h) => expect(h.fleet.machine('node-1').disk.cleans).toHaveLength(1),
    },
    { name: 'failed deploy, deleted: cleans first', given: () => host('error').withImage().failed('provisioning', { from: 'provisioning' }).deleted(), expect: { kind: 'advance', event: 'retry', to: 'deprovisioning' } },
    {
      name: 'failed cleaning, deleted: the cleaning is retried after its backoff, not skipped',
      given: () => host('error').failed('deprovisioning', { from: 'deprovisioning', dueInMs: 60_000 }).deleted(),
      expect: { kind: 'wait' },
    },
    {
      name: 'failed cleaning, force-deleted: deleted anyway with a Warning',
      given: () => host('error').failed('deprovisioning', { from: 'deprovisioning', dueInMs: 60_000 }).deleted().withAnnotations({ [FORCE_DELETE_ANNOTATION]: 'admin' }),
      expect: { kind: 'advance', event: 'delete', events: [expect.objectContaining({ type: 'Warning', reason: 'DeletedWithoutCleaning' })] },
    },
    {
      name: 'force-deleted while cleaning cannot reach the BMC: gives up after the attempts, with a Warning',
      given: () => host('deprovisioning').deleted().withAnnotations({ [FORCE_DELETE_ANNOTATION]: 'admin' }).withStatus({ errorCount: 5 }),
      expect: { kind: 'advance', event: 'delete', events: [expect.objectContaining({ reason: 'DeletedWithoutCleaning' })] },
    },
    {
      name: 'force-deleted provisioned host: still cleaned first',
      given: () => host('provisioned').provisionedWith().deleted().withAnnotations({ [FORCE_DELETE_ANNOTATION]: 'admin' }),
      expect: { kind: 'advance', event: 'deprovision' },
    },
    {
      name: 'powering off: hard off, waits until it reads off',
      given: () => host('powering-off-before-delete').deleted(),
      arrange: (h) => {
        h.fleet.setPower('node-1', 'on');
        h.clock.advance(1_000);
      },
      mode: 'drive',
      expect: { kind: 'advance', event: 'powered-off', message: 'powered off for deletion' },
      then: (_r, h) => expect(h.fleet.machine('node-1').power).toBe('off'),
    },
    { name: 'powering off, BMC unreachable: retry', given: () => host('powering-off-before-delete').deleted(), arrange: (h) => h.fleet.failNext('node-1', 'power', 'timeout'), expect: { kind: 'retry' } },
    {
      name: 'powering off, BMC unreachable on the last attempt: proceeds with a Warning',
      given: () => host('powering-off-before-delete').deleted().withStatus({ errorCount: 4 }),
      arrange: (h) => h.fleet.failNext('node-1', 'power', 'timeout'),
      expect: { kind: 'advance', event: 'powered-off', events: [expect.objectContaining({ type: 'Warning', reason: 'PowerOffFailed', message: expect.stringContaining('after 5 attempts') })] },
    },
    {
      name: 'powering off, power refused: retried like unreachable, not an error state',
      given: () => host('powering-off-before-delete', 'fail-power-3').deleted(),
      arrange: (h) => {
        h.fleet.heal('fail-power-3');
        h.fleet.setPower('fail-power-3', 'on');
        h.clock.advance(1_000);
        h.fleet.failNext('fail-power-3', 'power', 'refused', 2);
      },
      expect: { kind: 'retry' },
    },
    { name: 'powering off without a BMC: done', given: () => host('powering-off-before-delete').withoutBmc().deleted(), expect: { kind: 'advance', event: 'powered-off' } },
    {
      name: 'deleting: ends the agent session, then deleted',
      given: () => host('deleting').deleted(),
      expect: { kind: 'advance', event: 'deleted' },
    },
  ]);
});

describe('cross-cutting backoff gate', () => {
  table([
    {
      name: 'a retry backoff still running: waits',
      given: () => host('available').online().withStatus({ nextAttemptAt: new Date(Date.UTC(2026, 0, 1) + 7_000).toISOString() }),
      expect: { kind: 'wait', afterMs: 7_000 },
    },
    {
      name: 'the spec changed since the retry: runs now',
      given: () =>
        host('available')
          .withImage()
          .withStatus({ nextAttemptAt: new Date(Date.UTC(2026, 0, 1) + 7_000).toISOString() })
          .withStep({ retrySpecHash: 'not-the-current-spec' }),
      expect: { kind: 'advance', event: 'provision' },
    },
  ]);
});

describe('registration errors are retried early only when something changed', () => {
  it('a refused address (driver not enabled) remembers the credentials version, so the error state waits for the backoff', async () => {
    const h = harness();
    const b = host('registering').withSpec({ bmc: { address: 'ipmi://10.0.0.9', credentialsName: 'node-bmc' } });
    const { outcome } = await h.run(b);
    expect(outcome).toMatchObject({ kind: 'failed', remember: { credentialsVersion: 1 } });
    const inError = b.failed('registration', { credentialsVersion: (outcome as unknown as { remember: { credentialsVersion: number } }).remember.credentialsVersion });
    expect((await h.run(inError)).outcome).toMatchObject({ kind: 'wait' });
  });
});

describe('hosts no agent can serve (out-of-band)', () => {
  const noInventory = (base: DriverRegistry): DriverRegistry => ({
    ...withoutAgent(base),
    driverFor: (address) => {
      const { inventory: _dropped, ...rest } = base.driverFor(address);
      return rest;
    },
  });
  /** A driver whose inventory does not say whether secure boot is supported. */
  const inventoryWithoutSecureBoot = (base: DriverRegistry): DriverRegistry => ({
    ...withoutAgent(base),
    driverFor: (address) => {
      const d = base.driverFor(address);
      return {
        ...d,
        inventory: {
          get: async (target) => {
            const { secureBootCapable: _dropped, ...rest } = await d.inventory!.get(target);
            return rest;
          },
        },
      };
    },
  });
  table([
    {
      name: 'inspecting: the BMC inventory becomes status.hardware; nothing is booted or powered',
      given: () => host('inspecting'),
      drivers: withoutAgent,
      arrange: (h) => {
        h.fleet.setPower('node-1', 'on');
        h.clock.advance(1_000);
      },
      mode: 'drive',
      expect: { kind: 'advance', event: 'inspected', message: expect.stringContaining('out-of-band') },
      then: ({ host }, h) => {
        const m = h.fleet.machine('node-1');
        expect(host.status.hardware?.cpu).toEqual(m.inventory.cpu);
        expect(host.status.hardware?.nics?.map((n) => n.mac)).toEqual(m.inventory.nics?.map((n) => n.mac));
        expect(host.status.hardware?.secureBootCapable).toBe(m.inventory.secureBootCapable);
        expect(m.operations).toEqual({});
        expect(m.bootDevice.once).toBeUndefined();
        expect(m.power).toBe('on');
      },
    },
    {
      name: 'inspecting: inventory read unreachable is a retry',
      given: () => host('inspecting'),
      drivers: withoutAgent,
      arrange: (h) => h.fleet.failNext('node-1', 'inventory', 'timeout'),
      expect: { kind: 'retry', cause: expect.stringContaining('BMC unreachable') },
    },
    {
      name: 'inspecting: secure-boot support read from the secure-boot interface when the inventory does not say',
      given: () => host('inspecting'),
      drivers: inventoryWithoutSecureBoot,
      expect: { kind: 'advance', event: 'inspected' },
      then: ({ host }, h) => expect(host.status.hardware?.secureBootCapable).toBe(h.fleet.machine('node-1').inventory.secureBootCapable),
    },
    {
      name: 'inspecting: secure-boot read refused means not capable, and inspection still advances',
      given: () => host('inspecting'),
      drivers: inventoryWithoutSecureBoot,
      arrange: (h) => h.fleet.failNext('node-1', 'secureBoot', 'refused'),
      expect: { kind: 'advance', event: 'inspected' },
      then: ({ host }) => expect(host.status.hardware?.secureBootCapable).toBe(false),
    },
    {
      name: 'inspecting: a driver without inventory is an inspection error saying why',
      given: () => host('inspecting'),
      drivers: noInventory,
      expect: { kind: 'failed', errorType: 'inspection', message: expect.stringContaining('cannot read the hardware out-of-band') },
    },
    {
      name: 'provisioning: a clear provisioning error before anything touches the host',
      given: () => host('provisioning').withImage().online(),
      drivers: withoutAgent,
      expect: {
        kind: 'failed',
        errorType: 'provisioning',
        message: expect.stringContaining('no agent is available for fake hosts in this server yet: deploying needs the Ingot agent; '),
      },
      then: (_r, h) => {
        const m = h.fleet.machine('node-1');
        expect(m.operations).toEqual({});
        expect(m.power).toBe('off');
      },
    },
    {
      name: 'deprovisioning with cleaning: a clear deprovisioning error naming the way out',
      given: () => host('deprovisioning').provisionedWith(),
      drivers: withoutAgent,
      expect: { kind: 'failed', errorType: 'deprovisioning', message: expect.stringMatching(/cleaning needs the Ingot agent; .*automatedCleaningMode: disabled/) },
      then: (_r, h) => expect(h.fleet.machine('node-1').operations).toEqual({}),
    },
    {
      name: 'deprovisioning with cleaning disabled: powers off and becomes available',
      given: () => host('deprovisioning').provisionedWith().withSpec({ automatedCleaningMode: 'disabled' }),
      drivers: withoutAgent,
      arrange: (h) => h.fleet.setPower('node-1', 'on'),
      mode: 'drive',
      expect: { kind: 'advance', event: 'deprovisioned' },
      then: ({ host }, h) => {
        expect(h.fleet.machine('node-1').power).toBe('off');
        expect(host.status.provisioning.image).toBeUndefined();
      },
    },
    {
      name: 'deleting: no agent session to end',
      given: () => host('deleting').deleted(),
      drivers: withoutAgent,
      expect: { kind: 'advance', event: 'deleted' },
    },
  ]);
});
