// Hosts no agent can serve yet: the registry has no agent port for their driver (today every
// non-fake host, until the agent API is wired in). Inspection then reads what the BMC knows
// (Redfish: ComputerSystem, Processors, Storage, EthernetInterfaces, SecureBoot) without
// booting anything, and steps that need code running on the host (deploy, disk cleaning)
// fail with an error that says so, instead of booting a ramdisk nobody answers for.
import type { BmcDriver } from '../../drivers/driver.js';
import { BmcRefused } from '../../drivers/driver.js';
import type { Outcome } from '../outcome.js';
import type { BmcAccess, HandlerContext } from './types.js';

/** What a step that needs the agent tells the admin. */
export function noAgentMessage(driver: BmcDriver['name'], needs: 'deploying' | 'cleaning', fix: string): string {
  return `no agent is available for ${driver} hosts in this server yet: ${needs} needs the Ingot agent; ${fix}`;
}

/**
 * Out-of-band inspection: status.hardware from the BMC's inventory (and, when the inventory
 * does not say, secure-boot support from the secure-boot interface). Power is left as it is:
 * nothing is booted, and `available` then drives power to spec.online.
 */
export async function inspectOutOfBand(ctx: HandlerContext, bmc: BmcAccess): Promise<Outcome> {
  const { driver, target } = bmc;
  if (!driver.inventory) {
    return {
      kind: 'failed',
      errorType: 'inspection',
      message: `no agent is available for ${driver.name} hosts in this server and the ${driver.name} driver cannot read the hardware out-of-band; enable the agent API, or use a driver with inventory support`,
    };
  }
  // A copy: a driver may hand back an object it keeps (the fake fleet does).
  const hardware = structuredClone(await driver.inventory.get(target));
  if (hardware.secureBootCapable === undefined && driver.secureBoot) {
    try {
      hardware.secureBootCapable = (await driver.secureBoot.get(target)).capable;
    } catch (error) {
      // A BMC without the SecureBoot resource refuses (404): keep what the inventory said.
      if (!(error instanceof BmcRefused)) throw error;
      hardware.secureBootCapable = false;
    }
  }
  ctx.host.status.hardware = hardware;
  return { kind: 'advance', event: 'inspected', message: 'hardware inventory read out-of-band from the BMC (no agent booted)' };
}
