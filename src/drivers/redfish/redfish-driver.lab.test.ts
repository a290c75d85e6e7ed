// The shared BmcDriver contract (test/drivers/contract.ts) run by the Redfish driver against
// the lab simulator (src/lab): real HTTPS with the lab's generated CA, sessions, tasks and
// power transitions that take time. The lab is reached only over the network, as a real
// BMC would be. One lab serves every case; each case gets its own system so no case sees
// another's leftovers.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONTRACT_CASES, runDriverContract } from '../../../test/drivers/contract.js';
import { startLab, type RunningLab } from '../../lab/run-lab.js';
import { PERSONALITIES, type PersonalityName } from '../../lab/personality.js';
import { parseBmcAddress } from '../../model/bmc-address.js';
import { BmcCertificateError, BmcUnreachable, type BmcTarget } from '../driver.js';
import { makeCa } from '../../../test/support/test-pki.js';
import { createRedfishDriver, type RedfishDriverOptions } from './redfish-driver.js';

const dataDir = mkdtempSync(join(tmpdir(), 'ingot-redfish-lab-'));
const FAULT_SYSTEMS = 6;
let lab: Promise<RunningLab> | undefined;
let next = 0;

function labRunning(): Promise<RunningLab> {
  // Short power transitions keep the suite quick; the driver still has to poll through them.
  lab ??= startLab({ hosts: CONTRACT_CASES.length + FAULT_SYSTEMS, listen: '127.0.0.1:0', dataDir, powerTransitionMs: 200 });
  return lab;
}

function targetOf(running: RunningLab, index: number, caBundle = readFileSync(running.caFile, 'utf8')): BmcTarget {
  const system = running.systems[index]!;
  return {
    hostName: `lab-${system.id}`,
    address: parseBmcAddress(`redfish-virtualmedia://${new URL(running.url).host}${system.path}`),
    credentials: { username: system.username, password: system.password },
    tls: { verify: true, caBundle },
  };
}

afterAll(async () => {
  if (lab) await (await lab).close();
  rmSync(dataDir, { recursive: true, force: true });
});

runDriverContract({
  name: 'redfish (lab)',
  newTarget: async () => {
    const running = await labRunning();
    const target = targetOf(running, next++ % CONTRACT_CASES.length);
    const driver = createRedfishDriver({ taskPollIntervalMs: 50 });
    return { driver, target, cleanup: () => driver.close() };
  },
});

// The same contract against every other lab personality (src/lab/personality.ts): one lab each,
// one system per case. A skip says why that BMC cannot do it.
const PERSONALITY_SKIPS: Partial<Record<PersonalityName, Partial<Record<(typeof CONTRACT_CASES)[number], string>>>> = {
  'continuous-boot': {
    'boot-device': 'this BMC turns a one-time override into Continuous; the driver reports what the BMC says (persistent), and the conductor sets the disk persistently after a deploy',
  },
  minimal: { bios: 'the minimal BMC has no Bios resource (the driver refuses with a clear error)' },
  'stuck-power': {
    'power-converges': 'this BMC accepts Reset and never changes PowerState: test/lab-power.test.ts checks the conductor gives up with an error',
    'power-idempotent': 'this BMC never changes PowerState',
    reboot: 'this BMC never changes PowerState',
    bios: 'BIOS settings apply at a reset this BMC never performs',
  },
};
for (const name of PERSONALITIES.filter((p) => p !== 'standard')) {
  const personaDir = mkdtempSync(join(tmpdir(), `ingot-redfish-lab-${name}-`));
  let personaLab: Promise<RunningLab> | undefined;
  let personaNext = 0;
  afterAll(async () => {
    if (personaLab) await (await personaLab).close();
    rmSync(personaDir, { recursive: true, force: true });
  });
  runDriverContract({
    name: `redfish (lab, ${name} personality)`,
    newTarget: async () => {
      personaLab ??= startLab({ hosts: CONTRACT_CASES.length, listen: '127.0.0.1:0', dataDir: personaDir, powerTransitionMs: 200, personality: name, agents: false });
      const running = await personaLab;
      const target = targetOf(running, personaNext++ % CONTRACT_CASES.length);
      const driver = createRedfishDriver({ taskPollIntervalMs: 50 });
      return { driver, target, cleanup: () => driver.close() };
    },
    ...(PERSONALITY_SKIPS[name] ? { skip: PERSONALITY_SKIPS[name] } : {}),
  });
}

describe('redfish driver against lab faults', () => {
  const drivers: Array<{ close(): Promise<void> }> = [];
  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()));
  });
  function driverWith(opts: RedfishDriverOptions = {}) {
    const driver = createRedfishDriver({ retryBaseDelayMs: 5, ...opts });
    drivers.push(driver);
    return driver;
  }
  const faultSystem = (running: RunningLab, i: number) => ({ index: CONTRACT_CASES.length + i, id: running.systems[CONTRACT_CASES.length + i]!.id });

  it('rides out a burst of 503s on reads', async () => {
    const running = await labRunning();
    const { index, id } = faultSystem(running, 0);
    const driver = driverWith({ maxAttempts: 4 });
    const target = targetOf(running, index);
    await driver.identify(target); // session made before the fault
    running.faults.set(id, { errorBurst: 2 });
    expect(['on', 'off']).toContain(await driver.power.get(target));
    expect(running.faults.get(id).errorBurst).toBe(0);
  });

  it('rides out dropped connections on reads', async () => {
    const running = await labRunning();
    const { index, id } = faultSystem(running, 1);
    const driver = driverWith({ maxAttempts: 4 });
    const target = targetOf(running, index);
    await driver.identify(target);
    running.faults.set(id, { dropConnections: 2 });
    expect(['on', 'off']).toContain(await driver.power.get(target));
    expect(running.faults.get(id).dropConnections).toBe(0);
  });

  it('reports a BMC that keeps failing as BmcUnreachable after bounded attempts', async () => {
    const running = await labRunning();
    const { index, id } = faultSystem(running, 2);
    const driver = driverWith({ maxAttempts: 3 });
    const target = targetOf(running, index);
    await driver.identify(target);
    running.faults.set(id, { errorBurst: 50 });
    const err = await driver.power.get(target).catch((e: unknown) => e);
    running.faults.clear(id);
    expect(err).toBeInstanceOf(BmcUnreachable);
    expect((err as Error).message).toContain('3 attempts');
    expect((err as Error).message).toContain('HTTP 503');
  });

  it('refuses the lab certificate under another CA', async () => {
    const running = await labRunning();
    const { index } = faultSystem(running, 3);
    const driver = driverWith();
    const err = await driver.identify(targetOf(running, index, makeCa('not-the-lab').certPem)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcCertificateError);
    expect((err as Error).message).toContain('spec.bmc.caBundleName');
  });

  it('one driver keeps a session per system when systems behind one service share a user name', async () => {
    const running = await labRunning();
    const a = faultSystem(running, 4);
    const b = faultSystem(running, 5);
    const driver = driverWith();
    const targetA = targetOf(running, a.index);
    const targetB = targetOf(running, b.index);
    expect(targetA.credentials.username).toBe(targetB.credentials.username);
    // 1. A logs in, then B (same user name, another password, same origin).
    await driver.power.get(targetA);
    await driver.power.get(targetB);
    // 2. B's login must not have ended A's session as if it were A's old password.
    const sessionsOf = async (i: number, id: string) => {
      const s = running.systems[i]!;
      const res = await fetch(`${running.url}/redfish/v1/SessionService/Sessions`, {
        headers: { authorization: `Basic ${Buffer.from(`${s.username}:${s.password}`).toString('base64')}` },
        // @ts-expect-error undici's fetch takes a dispatcher; this one trusts the lab CA
        dispatcher: new (await import('undici')).Agent({ connect: { ca: readFileSync(running.caFile, 'utf8') } }),
      });
      expect(res.status, id).toBe(200);
      return ((await res.json()) as { Members: unknown[] }).Members.length;
    };
    expect(await sessionsOf(a.index, a.id)).toBe(1);
    expect(await sessionsOf(b.index, b.id)).toBe(1);
  });
});
