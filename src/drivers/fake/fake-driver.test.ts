import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runDriverContract } from '../../../test/drivers/contract.js';
import { AgentUnavailable, type AgentPort } from '../../conductor/agent-port.js';
import { parseBmcAddress } from '../../model/bmc-address.js';
import type { Host } from '../../model/host.js';
import { BmcAuthenticationError, BmcRefused, BmcUnreachable, type BmcDriver, type BmcTarget } from '../driver.js';
import { createFakeAgent } from './fake-agent.js';
import { createFakeDriver } from './fake-driver.js';
import { FakeFleet, type FakeFleetOptions } from './fake-fleet.js';

const SHA = 'a'.repeat(64);

function target(name: string, credentials = { username: 'admin', password: 'pw-1' }): BmcTarget {
  return { hostName: `ingot-${name}`, address: parseBmcAddress(`fake://${name}`), credentials, tls: { verify: true } };
}

function host(name: string): Host {
  const now = new Date(0).toISOString();
  return {
    apiVersion: 'ingot.dev/v1',
    kind: 'Host',
    // metadata.name deliberately differs from the fake name: the address keys the fleet.
    metadata: { name: `ingot-${name}`, uid: 'u', labels: {}, annotations: {}, resourceVersion: '1', createdAt: now, updatedAt: now },
    spec: { bmc: { address: `fake://${name}`, credentialsName: 'bmc' } },
    status: { provisioning: { state: 'registering' }, poweredOn: false, errorType: '', errorMessage: '', errorCount: 0, operationHistory: {}, conditions: [] },
  };
}

/** A fleet on a hand-driven clock, with fixed delays so the arithmetic in tests is readable. */
function clockedFleet(extra: Partial<FakeFleetOptions> = {}) {
  const clock = { t: 1_700_000_000_000 };
  const opts: FakeFleetOptions = {
    now: () => clock.t,
    random: () => 0.5,
    delays: { powerMs: [100, 100], inspectMs: [1_000, 1_000], deployMs: [2_000, 2_000], cleanMs: [500, 500] },
    ...extra,
  };
  const fleet = new FakeFleet(opts);
  return { clock, fleet, opts, driver: createFakeDriver(fleet), agent: createFakeAgent(fleet) };
}

async function powerOn(clock: { t: number }, driver: BmcDriver, name: string): Promise<void> {
  await driver.power.set(target(name), { state: 'on', mode: 'hard' });
  clock.t += 100;
  expect(await driver.power.get(target(name))).toBe('on');
}

const tempDirs: string[] = [];
afterEach(() => {
  while (tempDirs.length > 0) rmSync(tempDirs.pop()!, { recursive: true, force: true });
});

// 1. The shared contract, on a healthy host whose BMC password was set (so a wrong one is refused).
runDriverContract({
  name: 'fake',
  async newTarget() {
    const fleet = new FakeFleet({ delays: { powerMs: [5, 20], callMs: [0, 2] } });
    const credentials = { username: 'admin', password: 'contract-pw' };
    fleet.setCredentials('contract-host', credentials);
    return { driver: createFakeDriver(fleet), target: target('contract-host', credentials) };
  },
});

// 2. The same contract on a host without secure boot support: enabling it must be refused.
runDriverContract({
  name: 'fake (no-secure-boot host)',
  async newTarget() {
    const fleet = new FakeFleet({ delays: { powerMs: [5, 20] } });
    const credentials = { username: 'root', password: 'calvin' };
    fleet.setCredentials('no-secure-boot-1', credentials);
    return { driver: createFakeDriver(fleet), target: target('no-secure-boot-1', credentials) };
  },
});

describe('fake hardware behaves like hardware', () => {
  it('power changes land only after the power delay (the caller must poll)', async () => {
    const { clock, driver } = clockedFleet();
    const t = target('node-1');
    expect(await driver.power.get(t)).toBe('off');
    await driver.power.set(t, { state: 'on', mode: 'hard' });
    expect(await driver.power.get(t)).toBe('off');
    clock.t += 99;
    expect(await driver.power.get(t)).toBe('off');
    clock.t += 1;
    expect(await driver.power.get(t)).toBe('on');
  });

  it('asking again for a power change already under way does not restart its timer', async () => {
    const { clock, driver } = clockedFleet();
    const t = target('node-1');
    await driver.power.set(t, { state: 'on', mode: 'hard' });
    clock.t += 60;
    await driver.power.set(t, { state: 'on', mode: 'soft' });
    clock.t += 40;
    expect(await driver.power.get(t)).toBe('on');
  });

  it('reboot goes dark at once and comes back on', async () => {
    const { clock, driver, fleet } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    await driver.power.reboot(target('node-1'), { mode: 'hard' });
    expect(await driver.power.get(target('node-1'))).toBe('off');
    clock.t += 100;
    expect(await driver.power.get(target('node-1'))).toBe('on');
    expect(fleet.machine('node-1').bootCount).toBe(2);
  });

  it('a one-time boot device is used up by the next boot; a persistent one stays', async () => {
    const { clock, driver } = clockedFleet();
    const t = target('node-1');
    await driver.boot.setBootDevice(t, { device: 'pxe', persistent: true });
    await driver.boot.setBootDevice(t, { device: 'cd', persistent: false });
    expect(await driver.boot.getBootDevice(t)).toEqual({ device: 'cd', persistent: false });
    await powerOn(clock, driver, 'node-1');
    expect(await driver.boot.getBootDevice(t)).toEqual({ device: 'pxe', persistent: true });
  });

  it('rejects bad input with BmcRefused, as a BMC answers 400', async () => {
    const { driver } = clockedFleet();
    const t = target('node-1');
    await expect(driver.boot.setBootDevice(t, { device: 'uefi-http', persistent: true, mode: 'legacy' })).rejects.toBeInstanceOf(BmcRefused);
    await expect(driver.media!.insert(t, { url: 'file:///etc/passwd' })).rejects.toBeInstanceOf(BmcRefused);
    await expect(driver.bios!.apply(t, { NoSuchSetting: 'x' })).rejects.toThrow(/unknown BIOS attribute "NoSuchSetting"/);
    await expect(driver.bios!.apply(t, { ProcTurboMode: 'Sideways' })).rejects.toThrow(/must be one of Enabled, Disabled/);
    await expect(driver.bios!.apply(t, { BootRetryCount: 'three' })).rejects.toThrow(/takes a number/);
    await expect(driver.power.set(t, { state: 'sideways' as never, mode: 'hard' })).rejects.toBeInstanceOf(BmcRefused);
  });

  it('BIOS settings are staged and apply at the next power-on', async () => {
    const { clock, driver } = clockedFleet();
    const t = target('node-1');
    await driver.bios!.apply(t, { SriovGlobalEnable: 'Enabled', BootRetryCount: 5 });
    expect((await driver.bios!.get(t)).SriovGlobalEnable).toBe('Disabled');
    await powerOn(clock, driver, 'node-1');
    expect(await driver.bios!.get(t)).toMatchObject({ SriovGlobalEnable: 'Enabled', BootRetryCount: 5 });
  });

  it('inventory is derived from the name: stable across fleets, different across names', async () => {
    const a = clockedFleet();
    const b = clockedFleet();
    const inv1 = await a.driver.inventory!.get(target('rack1-node7'));
    expect(await b.driver.inventory!.get(target('rack1-node7'))).toEqual(inv1);
    const inv2 = await a.driver.inventory!.get(target('rack1-node8'));
    expect(inv2.nics![0]!.mac).not.toBe(inv1.nics![0]!.mac);
    expect(inv1.storage).toHaveLength(2);
    expect(inv1.nics).toHaveLength(2);
    for (const nic of inv1.nics!) expect(nic.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    const identity = await a.driver.identify(target('rack1-node7'));
    expect(identity.macAddresses).toEqual(inv1.nics!.map((n) => n.mac));
    expect(identity.serialNumber).toBe(inv1.systemVendor!.serialNumber);
  });

  it('secure boot: the setting changes at once, the running boot shows it only after a reboot', async () => {
    const { clock, driver } = clockedFleet();
    const t = target('node-1');
    await powerOn(clock, driver, 'node-1');
    await driver.secureBoot!.set(t, { enabled: true });
    expect(await driver.secureBoot!.get(t)).toEqual({ enabled: true, capable: true, currentBoot: false });
    await driver.power.reboot(t, { mode: 'hard' });
    clock.t += 100;
    expect(await driver.secureBoot!.get(t)).toEqual({ enabled: true, capable: true, currentBoot: true });
    await expect(driver.boot.setBootDevice(t, { device: 'pxe', persistent: true, mode: 'legacy' })).rejects.toThrow(/secure boot is enabled/);
  });

  it('validate refuses a target that is not fake://', () => {
    const { driver } = clockedFleet();
    const redfish: BmcTarget = { ...target('x'), address: parseBmcAddress('redfish://10.0.0.1/redfish/v1/Systems/1') };
    expect(() => driver.validate(redfish)).toThrow(BmcRefused);
  });
});

describe('scenarios by name', () => {
  it('fail-register: identify is refused, other calls answer; heal makes it register', async () => {
    const { driver, fleet } = clockedFleet();
    const t = target('fail-register-3');
    const err = await driver.identify(t).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as BmcRefused).retryable).toBe(false);
    expect(await driver.power.get(t)).toBe('off');
    fleet.heal('fail-register-3');
    await expect(driver.identify(t)).resolves.toMatchObject({ systemId: 'fail-register-3' });
  });

  it('bad-credentials: only the password correct-horse is accepted, until healed', async () => {
    const { driver, fleet } = clockedFleet();
    const err = await driver.identify(target('bad-credentials')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcAuthenticationError);
    expect((err as Error).message).not.toContain('pw-1');
    await expect(driver.identify(target('bad-credentials', { username: 'anyone', password: 'correct-horse' }))).resolves.toBeTruthy();
    fleet.heal('bad-credentials');
    await expect(driver.identify(target('bad-credentials'))).resolves.toBeTruthy();
  });

  it('fail-power: power.set and reboot are refused, power.get answers', async () => {
    const { driver, fleet } = clockedFleet();
    const t = target('fail-power');
    await expect(driver.power.set(t, { state: 'on', mode: 'hard' })).rejects.toBeInstanceOf(BmcRefused);
    await expect(driver.power.reboot(t, { mode: 'hard' })).rejects.toBeInstanceOf(BmcRefused);
    expect(await driver.power.get(t)).toBe('off');
    fleet.heal('fail-power');
    await expect(driver.power.set(t, { state: 'on', mode: 'hard' })).resolves.toBeUndefined();
  });

  it('flaky: a call fails as unreachable when the injected random is below 0.3', async () => {
    const draws = [0.1, 0.9, 0.29, 0.3];
    const { driver } = clockedFleet({ random: () => draws.shift() ?? 0.99 });
    const t = target('flaky-7');
    const first = await driver.power.get(t).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(BmcUnreachable);
    expect((first as BmcUnreachable).retryable).toBe(true);
    await expect(driver.power.get(t)).resolves.toBe('off');
    await expect(driver.power.get(t)).rejects.toBeInstanceOf(BmcUnreachable);
    await expect(driver.power.get(t)).resolves.toBe('off');
  });

  it('slow: delays are ten times longer', async () => {
    const { clock, driver } = clockedFleet();
    const t = target('slow-1');
    await driver.power.set(t, { state: 'on', mode: 'hard' });
    clock.t += 999;
    expect(await driver.power.get(t)).toBe('off');
    clock.t += 1;
    expect(await driver.power.get(t)).toBe('on');
  });

  it('no-secure-boot: not capable, and enabling is refused', async () => {
    const { driver } = clockedFleet();
    const t = target('no-secure-boot');
    expect(await driver.secureBoot!.get(t)).toEqual({ enabled: false, capable: false, currentBoot: false });
    await expect(driver.secureBoot!.set(t, { enabled: true })).rejects.toBeInstanceOf(BmcRefused);
    expect((await driver.inventory!.get(t)).secureBootCapable).toBe(false);
    expect((await driver.inventory!.get(target('healthy-1'))).secureBootCapable).toBe(true);
  });

  it('fail-inspect-2 (matched by prefix): the inspect operation fails; healed, the next one succeeds', async () => {
    const { clock, driver, agent, fleet } = clockedFleet();
    await powerOn(clock, driver, 'fail-inspect-2');
    const h = host('fail-inspect-2');
    await agent.start(h, 'op-1', { kind: 'inspect' });
    clock.t += 1_000;
    expect(await agent.poll(h, 'op-1')).toEqual({ state: 'failed', message: expect.stringContaining('scenario fail-inspect') });
    fleet.heal('fail-inspect-2');
    await agent.start(h, 'op-2', { kind: 'inspect' });
    clock.t += 1_000;
    expect((await agent.poll(h, 'op-2')).state).toBe('done');
  });
});

describe('control panel', () => {
  it('failNext scripts the next calls of one op, then the host answers again', async () => {
    const { driver, fleet } = clockedFleet();
    const t = target('node-1');
    fleet.failNext('node-1', 'power', 'timeout', 2);
    fleet.failNext('node-1', 'boot', 'refused');
    fleet.failNext('node-1', 'identify', 'auth');
    await expect(driver.power.get(t)).rejects.toBeInstanceOf(BmcUnreachable);
    await expect(driver.boot.getBootDevice(t)).rejects.toBeInstanceOf(BmcRefused);
    await expect(driver.power.set(t, { state: 'on', mode: 'hard' })).rejects.toBeInstanceOf(BmcUnreachable);
    await expect(driver.power.get(t)).resolves.toBe('off');
    await expect(driver.identify(t)).rejects.toBeInstanceOf(BmcAuthenticationError);
    await expect(driver.identify(t)).resolves.toBeTruthy();
    expect(fleet.machine('node-1').failNext).toEqual([]);
  });

  it('failNext on an agent operation: timeout refuses the start, refused makes it fail', async () => {
    const { clock, driver, agent, fleet } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    fleet.failNext('node-1', 'inspect', 'timeout');
    await expect(agent.start(h, 'op-1', { kind: 'inspect' })).rejects.toBeInstanceOf(AgentUnavailable);
    await agent.start(h, 'op-1', { kind: 'inspect' });
    clock.t += 1_000;
    expect((await agent.poll(h, 'op-1')).state).toBe('done');
    fleet.failNext('node-1', 'inspect', 'refused');
    await agent.start(h, 'op-2', { kind: 'inspect' });
    clock.t += 1_000;
    expect(await agent.poll(h, 'op-2')).toMatchObject({ state: 'failed', message: expect.stringContaining('failNext') });
  });

  it('setCredentials: "the password was changed on the BMC" refuses the old one', async () => {
    const { driver, fleet } = clockedFleet();
    await expect(driver.identify(target('node-1'))).resolves.toBeTruthy();
    fleet.setCredentials('node-1', { username: 'admin', password: 'rotated' });
    await expect(driver.identify(target('node-1'))).rejects.toBeInstanceOf(BmcAuthenticationError);
    await expect(driver.identify(target('node-1', { username: 'admin', password: 'rotated' }))).resolves.toBeTruthy();
    await expect(driver.identify(target('node-1', { username: 'root', password: 'rotated' }))).rejects.toBeInstanceOf(BmcAuthenticationError);
  });

  it('rejects nonsense on the panel itself', () => {
    const { fleet } = clockedFleet();
    expect(() => fleet.failNext('node-1', 'teleport' as never, 'timeout')).toThrow(RangeError);
    expect(() => fleet.failNext('node-1', 'power', 'timeout', 0)).toThrow(RangeError);
    expect(() => fleet.machine('Not_A_Label')).toThrow(BmcRefused);
  });
});

describe('fake agent', () => {
  it('needs a booted agent: refused while off, while powering on, and after booting from disk', async () => {
    const { clock, driver, agent } = clockedFleet();
    const h = host('node-1');
    await expect(agent.start(h, 'op-1', { kind: 'inspect' })).rejects.toThrow(/powered off/);
    await driver.power.set(target('node-1'), { state: 'on', mode: 'hard' });
    await expect(agent.start(h, 'op-1', { kind: 'inspect' })).rejects.toThrow(/powering on/);
    clock.t += 100;
    await agent.start(h, 'op-1', { kind: 'inspect' });
    expect((await agent.poll(h, 'op-1')).state).toBe('running');
  });

  it('inspect progresses with the clock and returns the machine inventory; start is idempotent', async () => {
    const { clock, driver, agent } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await agent.start(h, 'op-1', { kind: 'inspect' });
    expect(await agent.poll(h, 'op-1')).toMatchObject({ state: 'running', percent: 0 });
    clock.t += 500;
    await agent.start(h, 'op-1', { kind: 'inspect' }); // a restarted conductor starting again: no-op
    expect(await agent.poll(h, 'op-1')).toMatchObject({ state: 'running', percent: 50 });
    clock.t += 500;
    const done = await agent.poll(h, 'op-1');
    expect(done).toEqual({ state: 'done', inventory: await driver.inventory!.get(target('node-1')) });
  });

  it('one operation at a time', async () => {
    const { clock, driver, agent } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await agent.start(h, 'op-1', { kind: 'inspect' });
    await expect(agent.start(h, 'op-2', { kind: 'clean', clean: { mode: 'metadata' } })).rejects.toThrow(/still running inspect operation op-1/);
  });

  it('deploy writes the image to the disk chosen by root device hints; user data only as a digest', async () => {
    const { clock, driver, agent, fleet } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    const image = { url: 'http://images.internal/os.qcow2', checksum: SHA, checksumType: 'sha256' as const, format: 'qcow2' as const };
    await agent.start(h, 'deploy-1', {
      kind: 'deploy',
      deploy: { image, rootDeviceHints: { rotational: true }, configDrive: { metaData: { uuid: 'x' }, userData: '#cloud-config\npassword: hunter2' } },
    });
    clock.t += 1_999;
    expect(fleet.machine('node-1').disk.written).toBeUndefined();
    clock.t += 1;
    expect(await agent.poll(h, 'deploy-1')).toEqual({ state: 'done', rootDevice: '/dev/sdb' });
    const written = fleet.machine('node-1').disk.written!;
    expect(written).toMatchObject({ image, rootDevice: '/dev/sdb', operationId: 'deploy-1', configDrive: { metaData: { uuid: 'x' } } });
    expect(written.configDrive!.userDataSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(fleet.machine('node-1'))).not.toContain('hunter2');
  });

  it('deploy fails when no disk matches the hints', async () => {
    const { clock, driver, agent } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await agent.start(h, 'd', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA }, rootDeviceHints: { minSizeGigabytes: 900_000 } } });
    clock.t += 2_000;
    expect(await agent.poll(h, 'd')).toMatchObject({ state: 'failed', message: expect.stringContaining('rootDeviceHints') });
  });

  it('fail-provision: deploy fails and leaves nothing on the disk', async () => {
    const { clock, driver, agent, fleet } = clockedFleet();
    await powerOn(clock, driver, 'fail-provision');
    const h = host('fail-provision');
    await agent.start(h, 'd', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
    clock.t += 2_000;
    expect(await agent.poll(h, 'd')).toMatchObject({ state: 'failed', message: expect.stringContaining('scenario fail-provision') });
    expect(fleet.machine('fail-provision').disk.written).toBeUndefined();
  });

  it('clean erases the image and records the mode; fail-clean keeps the data', async () => {
    for (const name of ['node-1', 'fail-clean-1']) {
      const { clock, driver, agent, fleet } = clockedFleet();
      await powerOn(clock, driver, name);
      const h = host(name);
      await agent.start(h, 'd', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
      clock.t += 2_000;
      expect((await agent.poll(h, 'd')).state).toBe('done');
      await agent.start(h, 'c', { kind: 'clean', clean: { mode: 'full' } });
      clock.t += 500;
      const result = await agent.poll(h, 'c');
      const m = fleet.machine(name);
      if (name === 'node-1') {
        expect(result).toEqual({ state: 'done' });
        expect(m.disk.written).toBeUndefined();
        expect(m.disk.cleans).toEqual([{ mode: 'full', at: clock.t, operationId: 'c' }]);
      } else {
        expect(result).toMatchObject({ state: 'failed', message: expect.stringContaining('scenario fail-clean') });
        expect(m.disk.written?.image.url).toBe('http://i/x.raw');
        expect(m.disk.cleans).toEqual([]);
      }
    }
  });

  it('a power cycle loses a running operation; a finished one keeps its result', async () => {
    const { clock, driver, agent, fleet } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await agent.start(h, 'inspect-1', { kind: 'inspect' });
    clock.t += 1_000;
    await agent.start(h, 'deploy-1', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
    clock.t += 1_000;
    await driver.power.reboot(target('node-1'), { mode: 'hard' });
    clock.t += 5_000;
    const lost = await agent.poll(h, 'deploy-1');
    expect(lost).toMatchObject({ state: 'failed', message: expect.stringMatching(/lost deploy operation deploy-1: the host was reset/) });
    expect(fleet.machine('node-1').disk.written).toBeUndefined();
    expect((await agent.poll(h, 'inspect-1')).state).toBe('done');
    expect(await agent.poll(h, 'never-started')).toMatchObject({ state: 'failed', message: expect.stringContaining('lost operation never-started') });
    // The lost id stays lost (a retry uses a new id); the rebooted agent takes new work.
    await agent.start(h, 'deploy-1', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
    expect((await agent.poll(h, 'deploy-1')).state).toBe('failed');
    await agent.start(h, 'deploy-2', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
    expect((await agent.poll(h, 'deploy-2')).state).toBe('running');
  });

  it('powering off after an operation finished still applies its effect (settled as of the power-off)', async () => {
    const { clock, driver, agent, fleet } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await agent.start(h, 'd', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
    clock.t += 1_950;
    await driver.power.set(target('node-1'), { state: 'off', mode: 'hard' }); // lands at +2050, after the deploy ended at +2000
    clock.t += 10_000;
    expect(await agent.poll(h, 'd')).toMatchObject({ state: 'done' });
    expect(fleet.machine('node-1').disk.written?.operationId).toBe('d');
  });

  it('after a deploy the host boots from its disk: no agent until it boots from the network again', async () => {
    const { clock, driver, agent } = clockedFleet();
    const t = target('node-1');
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await agent.start(h, 'd', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
    clock.t += 2_000;
    await agent.poll(h, 'd');
    await driver.boot.setBootDevice(t, { device: 'hdd', persistent: true });
    await driver.power.reboot(t, { mode: 'hard' });
    clock.t += 100;
    await expect(agent.start(h, 'c', { kind: 'clean', clean: { mode: 'metadata' } })).rejects.toThrow(/booted from its disk/);
    await driver.boot.setBootDevice(t, { device: 'pxe', persistent: false });
    await driver.power.reboot(t, { mode: 'hard' });
    clock.t += 100;
    await agent.start(h, 'c', { kind: 'clean', clean: { mode: 'metadata' } });
    expect((await agent.poll(h, 'c')).state).toBe('running');
  });

  it('finish ends the session: the next operation needs a reboot', async () => {
    const { clock, driver, agent, fleet } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await agent.finish(h);
    await agent.finish(h);
    expect(fleet.machine('node-1').agent).toMatchObject({ running: false, sessionsFinished: 1 });
    await expect(agent.start(h, 'op', { kind: 'inspect' })).rejects.toThrow(/session .* has ended/);
    await driver.power.reboot(target('node-1'), { mode: 'hard' });
    clock.t += 100;
    await agent.start(h, 'op', { kind: 'inspect' });
  });

  it('refuses malformed requests', async () => {
    const { clock, driver, agent } = clockedFleet();
    await powerOn(clock, driver, 'node-1');
    const h = host('node-1');
    await expect(agent.start(h, '', { kind: 'inspect' })).rejects.toThrow(RangeError);
    await expect(agent.start(h, 'x', { kind: 'clean', clean: { mode: 'quick' as never } })).rejects.toThrow(/clean.mode/);
    await expect(agent.start(h, 'x', { kind: 'format' } as never)).rejects.toThrow(/unknown agent operation kind/);
  });
});

describe('persistence: the hardware outlives the control plane', () => {
  function statePath(): string {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-fake-'));
    tempDirs.push(dir);
    return join(dir, 'nested', 'fleet.json');
  }

  it('a new FakeFleet on the same statePath sees the same machines, and running work finishes on the clock', async () => {
    const path = statePath();
    const first = clockedFleet({ statePath: path });
    const { clock } = first;
    await powerOn(clock, first.driver, 'node-1');
    await first.driver.boot.setBootDevice(target('node-1'), { device: 'pxe', persistent: true });
    first.fleet.setCredentials('node-2', { username: 'u', password: 'p' });
    first.fleet.failNext('node-3', 'power', 'timeout');
    await first.agent.start(host('node-1'), 'deploy-1', { kind: 'deploy', deploy: { image: { url: 'http://i/x.raw', checksum: SHA } } });
    clock.t += 500;
    expect(readdirSync(join(path, '..'))).toEqual(['fleet.json']); // no temp file left behind

    // "kill -9": the first fleet is simply dropped; a second one starts on the same file and clock.
    const second = new FakeFleet({ ...first.opts, statePath: path });
    const driver = createFakeDriver(second);
    const agent: AgentPort = createFakeAgent(second);
    expect(await driver.power.get(target('node-1'))).toBe('on');
    expect(await driver.boot.getBootDevice(target('node-1'))).toEqual({ device: 'pxe', persistent: true });
    await expect(driver.identify(target('node-2'))).rejects.toBeInstanceOf(BmcAuthenticationError);
    await expect(driver.power.get(target('node-3'))).rejects.toBeInstanceOf(BmcUnreachable);
    expect(await agent.poll(host('node-1'), 'deploy-1')).toMatchObject({ state: 'running', percent: 25 });
    clock.t += 1_500;
    expect(await agent.poll(host('node-1'), 'deploy-1')).toEqual({ state: 'done', rootDevice: '/dev/sda' });
    expect(second.machine('node-1').disk.written?.image.url).toBe('http://i/x.raw');

    // And changes made by the second survive into a third.
    await driver.power.set(target('node-1'), { state: 'off', mode: 'soft' });
    const third = new FakeFleet({ ...first.opts, statePath: path });
    expect(third.machine('node-1').powerTransition).toEqual({ target: 'off', at: clock.t + 100 });
  });

  it('a corrupt state file is reported, not silently replaced with fresh hardware', async () => {
    const path = statePath();
    const { writeFileSync, mkdirSync } = await import('node:fs');
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, '{"version":1,"machines":');
    expect(() => new FakeFleet({ statePath: path })).toThrow(/not valid JSON/);
    expect(existsSync(path)).toBe(true);
  });

  it('two processes on one state file lose none of each other\'s changes', async () => {
    const path = statePath();
    const fleetModule = fileURLToPath(new URL('./fake-fleet.ts', import.meta.url));
    const script = join(path, '..', '..', 'child.ts');
    writeFileSync(
      script,
      `import { FakeFleet } from ${JSON.stringify(fleetModule)};
       const fleet = new FakeFleet({ statePath: ${JSON.stringify(path)} });
       for (let i = 0; i < 150; i++) {
         fleet.failNext('child-host', 'power', 'timeout');
         await new Promise((r) => setImmediate(r));
       }`,
    );
    const bin = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url));
    const child = spawn(bin, [script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let running = true;
    void exited.then(() => (running = false));
    const parent = new FakeFleet({ statePath: path });
    let mine = 0;
    while (running) {
      parent.failNext('parent-host', 'power', 'timeout');
      mine += 1;
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(await exited, stderr).toBe(0);
    const after = new FakeFleet({ statePath: path });
    expect(after.machine('child-host').failNext).toHaveLength(150);
    expect(after.machine('parent-host').failNext).toHaveLength(mine);
  });
});
