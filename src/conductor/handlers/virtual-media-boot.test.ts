// Booting the agent from virtual media (redfish-virtualmedia hosts): the handlers ask the agent
// port for a boot medium, insert it as virtual CD, boot it once, and eject it when the agent's
// work is done. Run against the fake fleet (whose machines boot from an inserted CD) behind a
// driver that answers for a redfish-virtualmedia address, and the fake agent given a
// prepareBoot that records its calls.
import { describe, expect, it } from 'vitest';
import type { BmcDriver, BmcTarget } from '../../drivers/driver.js';
import type { DriverRegistry } from '../../drivers/registry.js';
import { parseBmcAddress } from '../../model/bmc-address.js';
import type { Host } from '../../model/host.js';
import type { AgentPort, AgentStartRequest } from '../agent-port.js';
import { STEP } from './steps.js';
import { harness, host, IMAGE } from './test-kit.js';

const VM_ADDRESS = 'redfish-virtualmedia://bmc.test/redfish/v1/Systems/1';
const NET_ADDRESS = 'redfish://bmc.test/redfish/v1/Systems/1';
const MEDIUM_SECRET = 'medium-credential';

interface Calls {
  log: string[];
  prepared: number;
  /** What the handlers asked the agent to do, in order. */
  requests?: AgentStartRequest[];
}

/**
 * A registry whose driver serves any redfish address by driving the fake machine named like
 * the host, and whose agent is the fake agent plus a recording prepareBoot (or none).
 */
function redfishLike(calls: Calls, opts: { prepareBoot?: boolean } = {}) {
  return (base: DriverRegistry): DriverRegistry => {
    const fake = base.driverFor(parseBmcAddress('fake://node-1'));
    const t = (target: BmcTarget): BmcTarget => ({ ...target, address: parseBmcAddress(`fake://${target.hostName}`) });
    const h = (x: Host): Host => ({ ...x, spec: { ...x.spec, bmc: { ...x.spec.bmc!, address: `fake://${x.metadata.name}` } } });
    const driver: BmcDriver = {
      name: 'redfish',
      validate: (target) => fake.validate(t(target)),
      identify: (target) => fake.identify(t(target)),
      power: {
        get: (target) => fake.power.get(t(target)),
        set: (target, r) => fake.power.set(t(target), r),
        reboot: (target, r) => {
          calls.log.push('reboot');
          return fake.power.reboot(t(target), r);
        },
      },
      boot: {
        setBootDevice: (target, r) => {
          calls.log.push(`boot ${r.device}${r.persistent ? ' persistent' : ' once'}`);
          return fake.boot.setBootDevice(t(target), r);
        },
        getBootDevice: (target) => fake.boot.getBootDevice(t(target)),
      },
      media: {
        insert: (target, r) => {
          calls.log.push(`insert ${r.url}`);
          return fake.media!.insert(t(target), r);
        },
        eject: (target) => {
          calls.log.push('eject');
          return fake.media!.eject(t(target));
        },
      },
    };
    const fakeAgent = base.agentFor(host('inspecting').build());
    const agent: AgentPort = {
      start: (x, id, r) => {
        calls.requests?.push(r);
        return fakeAgent.start(h(x), id, r);
      },
      poll: (x, id) => fakeAgent.poll(h(x), id),
      finish: (x) => {
        calls.log.push('finish');
        return fakeAgent.finish(h(x));
      },
      ...(opts.prepareBoot === false
        ? {}
        : {
            prepareBoot: async () => {
              calls.prepared++;
              calls.log.push('prepareBoot');
              return { mediaUrl: `http://agent.test/agent/v1/boot/${MEDIUM_SECRET}-${calls.prepared}` };
            },
          }),
    };
    return { driverFor: () => driver, agentFor: () => agent, hasAgent: () => true };
  };
}

describe('booting the agent from virtual media', () => {
  it('inspecting: inserts a fresh medium, boots the CD once, ejects after finishing; the medium URL never reaches status', async () => {
    const calls: Calls = { log: [], prepared: 0 };
    const h = harness({ drivers: redfishLike(calls) });
    const { outcome, host: done } = await h.drive(host('inspecting').withSpec({ bmc: { address: VM_ADDRESS, credentialsName: 'node-bmc' } }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'inspected' });
    expect(done.status.hardware?.cpu?.count).toBeGreaterThan(0);
    // 1. One boot: medium prepared, inserted, CD once, then power on.
    expect(calls.prepared).toBe(1);
    const url = `http://agent.test/agent/v1/boot/${MEDIUM_SECRET}-1`;
    expect(calls.log.slice(0, 3)).toEqual(['prepareBoot', `insert ${url}`, 'boot cd once']);
    // 2. The machine really booted from the CD, and the medium is gone afterwards.
    const m = h.fleet.machine('node-1');
    expect(m.lastBoot?.from).toBe('cd');
    expect(m.media.url).toBeUndefined();
    expect(calls.log.indexOf('eject')).toBeGreaterThan(calls.log.indexOf('finish'));
    expect(calls.log.filter((c) => c === 'eject')).toHaveLength(1);
    expect(done.status.stepState?.[STEP.agentBootVia]).toBe('virtual-media');
    expect(JSON.stringify(done.status)).not.toContain(MEDIUM_SECRET);
    expect(m.power).toBe('off');
  });

  it('provisioning: deploys from the CD-booted agent, ejects, then boots the disk', async () => {
    const calls: Calls = { log: [], prepared: 0 };
    const h = harness({ drivers: redfishLike(calls) });
    const { outcome } = await h.drive(host('provisioning').withImage().online().withSpec({ bmc: { address: VM_ADDRESS, credentialsName: 'node-bmc' } }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    const m = h.fleet.machine('node-1');
    expect(Object.values(m.operations).map((o) => o.kind)).toEqual(['deploy']);
    // The disk is the persistent boot device before the medium is ejected and the host rebooted.
    const order = ['boot hdd persistent', 'finish', 'eject', 'reboot'].map((c) => calls.log.lastIndexOf(c));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(m.media.url).toBeUndefined();
    expect(m.lastBoot?.from).toBe('hdd');
    expect(m.disk.written?.image.url).toBe(IMAGE.url);
  });

  it('a conductor that dies before saving the boot boots again with a new medium: one operation runs', async () => {
    const calls: Calls = { log: [], prepared: 0 };
    const h = harness({ drivers: redfishLike(calls) });
    const start = host('deprovisioning').provisionedWith().withSpec({ bmc: { address: VM_ADDRESS, credentialsName: 'node-bmc' } }).build();
    // 1. The first conductor boots the agent, then dies before its save lands.
    const first = await h.run(start);
    expect(first.outcome.kind).toBe('save');
    expect(calls.prepared).toBe(1);
    // 2. The next one starts from the stored status (no boot recorded) and boots again.
    const { outcome } = await h.drive(start);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
    expect(calls.prepared).toBe(2);
    expect(calls.log.filter((c) => c.startsWith('insert')).at(-1)).toBe(`insert http://agent.test/agent/v1/boot/${MEDIUM_SECRET}-2`);
    expect(Object.values(h.fleet.machine('node-1').operations).map((o) => o.kind)).toEqual(['clean']);
    expect(h.fleet.machine('node-1').media.url).toBeUndefined();
  });

  it('a network-boot redfish address keeps PXE even when the agent can make media', async () => {
    const calls: Calls = { log: [], prepared: 0 };
    const h = harness({ drivers: redfishLike(calls) });
    const { outcome, host: done } = await h.drive(host('inspecting').withSpec({ bmc: { address: NET_ADDRESS, credentialsName: 'node-bmc' } }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'inspected' });
    expect(calls.prepared).toBe(0);
    expect(calls.log).not.toContain('eject');
    expect(calls.log).toContain('boot pxe once');
    expect(h.fleet.machine('node-1').lastBoot?.from).toBe('pxe');
    expect(done.status.stepState?.[STEP.agentBootVia]).toBe('network');
  });

  it('an agent port without prepareBoot network-boots a virtual-media host', async () => {
    const calls: Calls = { log: [], prepared: 0 };
    const h = harness({ drivers: redfishLike(calls, { prepareBoot: false }) });
    const { outcome } = await h.drive(host('inspecting').withSpec({ bmc: { address: VM_ADDRESS, credentialsName: 'node-bmc' } }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'inspected' });
    expect(calls.log.some((c) => c.startsWith('insert'))).toBe(false);
    expect(h.fleet.machine('node-1').lastBoot?.from).toBe('pxe');
  });

  it('an agent that never checks in fails inspection saying so, and what to check: the boot from the CD and the BMC reaching the medium', async () => {
    const calls: Calls = { log: [], prepared: 0 };
    const h = harness({ drivers: redfishLike(calls) });
    h.fleet.failNext('node-1', 'inspect', 'timeout', 1000);
    const { outcome } = await h.drive(host('inspecting').withSpec({ bmc: { address: VM_ADDRESS, credentialsName: 'node-bmc' } }));
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'inspection' });
    if (outcome.kind !== 'failed') return;
    expect(outcome.message).toMatch(/^the agent never checked in: nothing looked up within 30 s of booting the host into the agent; /);
    expect(outcome.message).toContain('boots from the virtual CD');
    expect(outcome.message).toContain('the BMC can fetch the boot medium from the agent API URL');
    expect(outcome.message).not.toContain(MEDIUM_SECRET);
  });

  it('a deploy retried after a provisioning error asks the agent to erase what the failed one left; a first deploy does not', async () => {
    const first: Calls = { log: [], prepared: 0, requests: [] };
    await harness({ drivers: redfishLike(first) }).drive(host('provisioning').withImage().withSpec({ bmc: { address: VM_ADDRESS, credentialsName: 'node-bmc' } }));
    const retried: Calls = { log: [], prepared: 0, requests: [] };
    const { outcome } = await harness({ drivers: redfishLike(retried) }).drive(
      host('provisioning').withImage().withSpec({ bmc: { address: VM_ADDRESS, credentialsName: 'node-bmc' } }).withStatus({ errorType: 'provisioning', errorMessage: 'deploy failed on the host: the agent was lost', errorCount: 1 }),
    );
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    const deployOf = (c: Calls) => c.requests!.find((r) => r.kind === 'deploy') as Extract<AgentStartRequest, { kind: 'deploy' }>;
    expect(deployOf(first).deploy.eraseFirst).toBeUndefined();
    expect(deployOf(retried).deploy.eraseFirst).toBe(true);
  });
});
