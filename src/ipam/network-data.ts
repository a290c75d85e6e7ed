// network_data.json for the config drive: the OpenStack metadata format that
// cloud-init (OpenStack and ConfigDrive datasources), Glean and Ignition's afterburn read to
// configure static addresses without DHCP. Shape as Nova writes it
// (nova/virt/netutils.py get_network_metadata; "links", "networks", "services"):
// - links: one per NIC carrying a network, `type: phy`, identified by MAC.
// - networks: `type` ipv4 / ipv6 (static), `ip_address`, `netmask` (dotted for IPv4; the IPv6
//   mask in colon form for IPv6, as Nova does, since cloud-init turns either into a prefix),
//   `routes` with the default route via the pool's gateway, and per-network dns `services`.
// - services: every DNS server once, in order, for resolvers that read only the top level.
// Only the first network of each family with a gateway gets the default route: two default
// routes of one family on different links make the host's egress depend on link order.
import { IngotError, validationError } from '../model/errors.js';
import type { HardwareDetails } from '../model/host.js';
import { formatIp, ipv4Netmask, parseIp } from '../model/ip-address.js';
import { parseIpPoolSpec, type IpPoolSpec } from '../model/ip-pool.js';

export interface NetworkDataLink {
  id: string;
  type: 'phy';
  ethernet_mac_address: string;
}

export interface NetworkDataRoute {
  network: string;
  netmask: string;
  gateway: string;
}

export interface NetworkDataService {
  type: 'dns';
  address: string;
}

export interface NetworkDataNetwork {
  id: string;
  type: 'ipv4' | 'ipv6';
  link: string;
  ip_address: string;
  netmask: string;
  routes: NetworkDataRoute[];
  network_id: string;
  services: NetworkDataService[];
}

export interface NetworkData {
  links: NetworkDataLink[];
  networks: NetworkDataNetwork[];
  services: NetworkDataService[];
}

/** One address a claim holds, and the NIC it goes on. */
export interface NetworkAttachment {
  /** MAC of the host NIC for this address (e.g. the host's bootMACAddress). */
  mac: string;
  pool: { name: string; spec: IpPoolSpec };
  /** The allocated address (Store.allocateAddress). */
  address: string;
}

export interface RenderNetworkDataInput {
  /** status.hardware.nics from inspection; names become link ids. */
  nics: NonNullable<HardwareDetails['nics']>;
  attachments: NetworkAttachment[];
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

function ipv6Netmask(prefix: number): string {
  const mask = prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n);
  return formatIp({ family: 6, value: mask });
}

export function renderNetworkData(input: RenderNetworkDataInput): NetworkData {
  const nicNames = new Map<string, string>();
  for (const nic of input.nics) nicNames.set(nic.mac.toLowerCase(), nic.name);

  const links: NetworkDataLink[] = [];
  const linkIdByMac = new Map<string, string>();
  const networks: NetworkDataNetwork[] = [];
  const allDns: NetworkDataService[] = [];
  const defaultRouteFamilies = new Set<number>();

  input.attachments.forEach((attachment, index) => {
    const field = `attachments[${index}]`;
    const mac = attachment.mac.toLowerCase();
    if (!MAC.test(mac)) throw validationError([{ field: `${field}.mac`, message: `"${attachment.mac}" is not a MAC address (six colon-separated hex octets)` }]);
    if (!nicNames.has(mac)) {
      throw new IngotError('INGOT_ERR_UNPROCESSABLE', `the host has no NIC with MAC ${mac} (network from IP pool "${attachment.pool.name}"); inspect the host again or pick one of: ${[...nicNames.keys()].join(', ') || 'none found'}`);
    }
    const pool = parseIpPoolSpec(attachment.pool.spec, `IP pool "${attachment.pool.name}" spec`);
    const address = parseIp(attachment.address);
    if (address === undefined || address.family !== pool.family) {
      throw validationError([{ field: `${field}.address`, message: `"${attachment.address}" is not an IPv${pool.family} address of IP pool "${attachment.pool.name}"` }]);
    }

    let link = linkIdByMac.get(mac);
    if (link === undefined) {
      // Inspection names NICs as the kernel does (eth0, enp1s0); fall back to a stable id.
      link = nicNames.get(mac) || `nic${links.length}`;
      if (links.some((l) => l.id === link)) link = `nic${links.length}`;
      linkIdByMac.set(mac, link);
      links.push({ id: link, type: 'phy', ethernet_mac_address: mac });
    }

    const routes: NetworkDataRoute[] = [];
    if (pool.gateway !== undefined && !defaultRouteFamilies.has(pool.family)) {
      defaultRouteFamilies.add(pool.family);
      routes.push(pool.family === 4 ? { network: '0.0.0.0', netmask: '0.0.0.0', gateway: formatIp(pool.gateway) } : { network: '::', netmask: '::', gateway: formatIp(pool.gateway) });
    }
    const services = pool.dnsServers.map((dns): NetworkDataService => ({ type: 'dns', address: formatIp(dns) }));
    for (const service of services) if (!allDns.some((s) => s.address === service.address)) allDns.push(service);

    networks.push({
      id: `network${index}`,
      type: pool.family === 4 ? 'ipv4' : 'ipv6',
      link,
      ip_address: formatIp(address),
      netmask: pool.family === 4 ? ipv4Netmask(pool.prefix) : ipv6Netmask(pool.prefix),
      routes,
      network_id: attachment.pool.name,
      services,
    });
  });
  return { links, networks, services: allDns };
}
