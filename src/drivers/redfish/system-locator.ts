// Which ComputerSystem a host is: the path in spec.bmc.address, or else the only member of
// the service's Systems collection (DSP0266: the service root's `Systems` link). A BMC that
// manages several systems (blade chassis, multi-node) needs the path spelled out.
import type { BmcTarget } from '../driver.js';
import { BmcRefused } from '../driver.js';
import { listMembers } from './collections.js';
import { linkOf } from './redfish-context.js';
import { originOf, type RedfishClient } from './redfish-client.js';

export class SystemLocator {
  readonly #client: RedfishClient;
  readonly #found = new Map<string, string>();

  constructor(client: RedfishClient) {
    this.#client = client;
  }

  /** The system's path on the BMC. Cached per origin once discovered. */
  async locate(target: BmcTarget): Promise<string> {
    if (target.address.path) return target.address.path;
    const origin = originOf(target);
    const cached = this.#found.get(origin);
    if (cached) return cached;
    const root = await this.#client.get(target, '/redfish/v1', 'reading the Redfish service root');
    const systems = linkOf(root, 'Systems') ?? '/redfish/v1/Systems';
    const members = await listMembers(this.#client, target, systems);
    if (members.length === 0) {
      throw new BmcRefused(`host "${target.hostName}": the BMC at ${origin} lists no systems in ${systems}; check spec.bmc.address`);
    }
    if (members.length > 1) {
      const examples = members.slice(0, 3).map((m) => `${target.address.scheme}://${hostPort(target)}${this.#client.resolveLink(target, m)}`);
      throw new BmcRefused(
        `host "${target.hostName}": the BMC has ${members.length} systems; put the system path in spec.bmc.address, e.g. ${examples.join(' or ')}`,
      );
    }
    const path = this.#client.resolveLink(target, members[0]!);
    this.#found.set(origin, path);
    return path;
  }

  /** Forgets a discovered path (e.g. after a 404 on it). */
  forget(target: BmcTarget): void {
    this.#found.delete(originOf(target));
  }
}

function hostPort(target: BmcTarget): string {
  return `${target.address.host}${target.address.port !== undefined ? `:${target.address.port}` : ''}`;
}
