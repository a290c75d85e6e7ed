// The Redfish BMC driver (DMTF DSP0266), built from small parts over one shared client.
// Addresses: redfish://, redfish+http(s)://, redfish-virtualmedia:// (+http/+https), with an
// optional system path (see system-locator.ts). The media part is always offered: virtual
// media is used when the address asks for it, but inspection ISOs may use it on any Redfish host.
import type { BmcDriver, BmcTarget, SystemIdentity } from '../driver.js';
import { BmcRefused } from '../driver.js';
import { redfishBios } from './bios.js';
import { redfishBoot } from './boot.js';
import { redfishFirmware } from './firmware.js';
import { readNics, redfishInventory } from './inventory.js';
import { redfishPower } from './power.js';
import { RedfishClient, type RedfishClientOptions } from './redfish-client.js';
import type { RedfishContext } from './redfish-context.js';
import { pickString } from './redfish-context.js';
import { redfishSecureBoot } from './secure-boot.js';
import { SystemLocator } from './system-locator.js';
import { redfishVirtualMedia } from './virtual-media.js';

export interface RedfishDriverOptions extends RedfishClientOptions {
  /** Task monitor poll interval when the BMC sends no Retry-After (default 1 s). */
  taskPollIntervalMs?: number;
  /** How long to follow one BMC task before reporting it unfinished (default 120 s). */
  taskTimeoutMs?: number;
  /** Injected for tests. */
  now?: () => number;
}

const MAX_CREDENTIAL_LENGTH = 1024;

export function createRedfishDriver(options: RedfishDriverOptions = {}): BmcDriver & { close(): Promise<void> } {
  const client = new RedfishClient(options);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const ctx: RedfishContext = {
    client,
    locator: new SystemLocator(client),
    tasks: {
      intervalMs: options.taskPollIntervalMs ?? 1_000,
      timeoutMs: options.taskTimeoutMs ?? 120_000,
      sleep,
      now: options.now ?? Date.now,
    },
  };

  function validate(target: BmcTarget): void {
    const where = `host "${target.hostName}"`;
    if (target.address.driver !== 'redfish') {
      throw new BmcRefused(`${where}: spec.bmc.address "${target.address.raw}" is not a Redfish address (use redfish:// or redfish-virtualmedia://)`);
    }
    if (target.address.protocol !== 'http' && target.address.protocol !== 'https') {
      throw new BmcRefused(`${where}: spec.bmc.address "${target.address.raw}" must use http or https`);
    }
    if (target.address.path && !target.address.path.startsWith('/redfish/v1/')) {
      throw new BmcRefused(`${where}: the path in spec.bmc.address must be a Redfish system path such as /redfish/v1/Systems/1`);
    }
    const { username, password } = target.credentials;
    if (!username || !password || username.length > MAX_CREDENTIAL_LENGTH || password.length > MAX_CREDENTIAL_LENGTH) {
      throw new BmcRefused(`${where}: the Secret named by spec.bmc.credentialsName needs a non-empty username and password (at most ${MAX_CREDENTIAL_LENGTH} characters)`);
    }
  }

  async function identify(target: BmcTarget): Promise<SystemIdentity> {
    validate(target);
    const systemId = await ctx.locator.locate(target);
    const system = await client.get(target, systemId, 'reading the system');
    const identity: SystemIdentity = { systemId };
    const fields = { uuid: 'UUID', manufacturer: 'Manufacturer', model: 'Model', serialNumber: 'SerialNumber' } as const;
    for (const [key, prop] of Object.entries(fields) as Array<[keyof typeof fields, string]>) {
      const value = pickString(system, prop);
      if (value) identity[key] = key === 'uuid' ? value.toLowerCase() : value;
    }
    identity.macAddresses = (await readNics(ctx, target, system)).map((n) => n.mac);
    const auth = client.authNotice(target);
    if (auth?.sessionRefused) identity.authenticationNote = `${auth.sessionRefused}; Ingot uses HTTP Basic for this host`;
    return identity;
  }

  return {
    name: 'redfish',
    validate,
    identify,
    power: redfishPower(ctx),
    boot: redfishBoot(ctx),
    media: redfishVirtualMedia(ctx),
    inventory: redfishInventory(ctx),
    secureBoot: redfishSecureBoot(ctx),
    bios: redfishBios(ctx),
    firmware: redfishFirmware(ctx),
    close: () => client.close(),
  };
}
