import { describe, expect, it } from 'vitest';
import type { AgentPort } from '../conductor/agent-port.js';
import { parseBmcAddress } from '../model/bmc-address.js';
import type { Host } from '../model/host.js';
import { BmcRefused, type BmcDriver } from './driver.js';
import { FakeFleet } from './fake/fake-fleet.js';
import { createDriverRegistry } from './registry.js';

function host(address: string): Host {
  const now = new Date(0).toISOString();
  return {
    apiVersion: 'ingot.dev/v1',
    kind: 'Host',
    metadata: { name: 'h1', uid: 'u', labels: {}, annotations: {}, resourceVersion: '1', createdAt: now, updatedAt: now },
    spec: { bmc: { address, credentialsName: 'bmc' } },
    status: { provisioning: { state: 'registering' }, poweredOn: false, errorType: '', errorMessage: '', errorCount: 0, operationHistory: {}, conditions: [] },
  };
}

const redfishAddress = parseBmcAddress('redfish+https://10.0.0.7/redfish/v1/Systems/1');
const fakeAddress = parseBmcAddress('fake://node-1');

describe('driver registry', () => {
  it('fake:// hosts get a fake driver and agent over the given fleet', async () => {
    const fleet = new FakeFleet({ delays: { powerMs: [0, 0] } });
    const registry = createDriverRegistry({ fake: fleet });
    const driver = registry.driverFor(fakeAddress);
    expect(driver.name).toBe('fake');
    expect(registry.driverFor(fakeAddress)).toBe(driver);
    await driver.power.set({ hostName: 'h1', address: fakeAddress, credentials: { username: 'a', password: 'b' }, tls: { verify: true } }, { state: 'on', mode: 'hard' });
    expect(fleet.machine('node-1').power).toBe('on');
    const agent = registry.agentFor(host('fake://node-1'));
    await agent.start(host('fake://node-1'), 'op', { kind: 'inspect' });
    expect(Object.keys(fleet.machine('node-1').operations)).toEqual(['op']);
  });

  it('other schemes get the configured driver and agent', () => {
    const redfish = { name: 'redfish' } as BmcDriver;
    const agent = {} as AgentPort;
    const registry = createDriverRegistry({ redfish, agent });
    expect(registry.driverFor(redfishAddress)).toBe(redfish);
    expect(registry.agentFor(host('redfish://10.0.0.7'))).toBe(agent);
    expect(registry.hasAgent(host('redfish://10.0.0.7'))).toBe(true);
  });

  it('hasAgent says, without throwing, whether agentFor would give a port', () => {
    const withFake = createDriverRegistry({ fake: new FakeFleet({ delays: { powerMs: [0, 0] } }), redfish: { name: 'redfish' } as BmcDriver });
    expect(withFake.hasAgent(host('fake://node-1'))).toBe(true);
    expect(withFake.hasAgent(host('redfish://10.0.0.7'))).toBe(false);
    expect(withFake.hasAgent(host('not a bmc address'))).toBe(false);
    const none = createDriverRegistry({});
    expect(none.hasAgent(host('fake://node-1'))).toBe(false);
  });

  it('a driver not enabled in this server is a clear, non-retryable refusal', () => {
    const registry = createDriverRegistry({});
    for (const [address, driver] of [[redfishAddress, 'redfish'], [parseBmcAddress('ipmi://10.0.0.8'), 'ipmi'], [fakeAddress, 'fake']] as const) {
      const err = (() => {
        try {
          registry.driverFor(address);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(BmcRefused);
      expect((err as Error).message).toContain(`the ${driver} driver is not enabled in this server`);
    }
    expect(() => registry.agentFor(host('fake://node-1'))).toThrow(/the fake driver is not enabled/);
    expect(() => registry.agentFor(host('redfish://10.0.0.7'))).toThrow(/no agent API is configured/);
  });
});
