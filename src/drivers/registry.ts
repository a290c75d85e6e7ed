// Which driver and agent serve a host, chosen by its BMC address scheme. The server builds one
// registry at start-up from its configuration; a scheme whose driver is not configured gets a
// clear, non-retryable error instead of a crash or a silent fallback.
import type { AgentPort } from '../conductor/agent-port.js';
import type { BmcAddress, DriverName } from '../model/bmc-address.js';
import { parseBmcAddress } from '../model/bmc-address.js';
import type { Host } from '../model/host.js';
import { BmcRefused, type BmcDriver } from './driver.js';
import { createFakeAgent } from './fake/fake-agent.js';
import { createFakeDriver } from './fake/fake-driver.js';
import type { FakeFleet } from './fake/fake-fleet.js';

export interface DriverRegistry {
  /** The driver for a parsed address; throws BmcRefused when that driver is not enabled in this server. */
  driverFor(address: BmcAddress): BmcDriver;
  /** The agent port for a host (fake:// hosts get the fake agent); throws BmcRefused when none is configured. */
  agentFor(host: Host): AgentPort;
  /**
   * Whether agentFor(host) would give an agent port, without throwing: the conductor inspects
   * out-of-band (through the BMC alone) and refuses deploys and cleaning when it is false.
   */
  hasAgent(host: Host): boolean;
}

export interface DriverRegistryOptions {
  /** Enables fake://NAME hosts, simulated by this fleet. */
  fake?: FakeFleet;
  redfish?: BmcDriver;
  ipmi?: BmcDriver;
  /** The real agent port (agent API) used for every non-fake host. */
  agent?: AgentPort;
}

export function createDriverRegistry(opts: DriverRegistryOptions): DriverRegistry {
  const fakeDriver = opts.fake ? createFakeDriver(opts.fake) : undefined;
  const fakeAgent = opts.fake ? createFakeAgent(opts.fake) : undefined;
  const drivers: Record<DriverName, BmcDriver | undefined> = { fake: fakeDriver, redfish: opts.redfish, ipmi: opts.ipmi };

  function notEnabled(driver: DriverName): BmcRefused {
    const how = driver === 'fake' ? 'start the server with the fake fleet enabled (development and tests only)' : `configure the ${driver} driver`;
    return new BmcRefused(`the ${driver} driver is not enabled in this server; ${how}, or change spec.bmc.address`);
  }

  return {
    driverFor(address) {
      const driver = drivers[address.driver];
      if (!driver) throw notEnabled(address.driver);
      return driver;
    },
    agentFor(host) {
      const raw = host.spec.bmc?.address;
      if (!raw) throw new BmcRefused(`host ${host.metadata.name} has no spec.bmc.address, so no agent can be booted on it`);
      const address = parseBmcAddress(raw);
      if (address.driver === 'fake') {
        if (!fakeAgent) throw notEnabled('fake');
        return fakeAgent;
      }
      if (!opts.agent) throw new BmcRefused(`no agent API is configured in this server, so host ${host.metadata.name} cannot be inspected, deployed or cleaned`);
      return opts.agent;
    },
    hasAgent(host) {
      const raw = host.spec.bmc?.address;
      if (!raw) return false;
      let driver: DriverName;
      try {
        driver = parseBmcAddress(raw).driver;
      } catch {
        return false;
      }
      return driver === 'fake' ? fakeAgent !== undefined : opts.agent !== undefined;
    },
  };
}
