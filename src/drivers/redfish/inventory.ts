// Out-of-band inspection: what the BMC knows of the hardware, from the ComputerSystem
// (ProcessorSummary, MemorySummary, BiosVersion), its Processors (CPUs and GPUs), Memory
// (when there is no MemorySummary), Storage/Drives (or the older SimpleStorage),
// EthernetInterfaces, SecureBoot, the managing Manager and the UpdateService's firmware
// inventory (when the system gives no BiosVersion). Every property is optional in Redfish, so
// each one missing just leaves its field out.
import type { BmcTarget, InventoryInterface } from '../driver.js';
import type { HardwareDetails } from '../../model/host.js';
import { getMembers } from './collections.js';
import type { RedfishContext } from './redfish-context.js';
import { linkOf, pick, pickNumber, pickString } from './redfish-context.js';

type Nic = NonNullable<HardwareDetails['nics']>[number];
type Disk = NonNullable<HardwareDetails['storage']>[number];

const ARCHES: Record<string, string> = { 'x86-64': 'x86_64', x86: 'i686', 'ARM-A64': 'aarch64', 'ARM-A32': 'armv7l', 'IA-64': 'ia64', PowerISA: 'ppc64le', 'MIPS64': 'mips64' };
const MAX_DRIVES = 128;

export async function readNics(ctx: RedfishContext, target: BmcTarget, system: Record<string, unknown>): Promise<Nic[]> {
  const link = linkOf(system, 'EthernetInterfaces');
  if (!link) return [];
  const nics: Nic[] = [];
  for (const nic of await getMembers(ctx.client, target, link, 64)) {
    const mac = (pickString(nic, 'MACAddress') ?? pickString(nic, 'PermanentMACAddress') ?? '').toLowerCase();
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) continue;
    const entry: Nic = { name: pickString(nic, 'Id') ?? pickString(nic, 'Name') ?? mac, mac };
    const speed = pickNumber(nic, 'SpeedMbps');
    if (speed !== undefined) entry.speedGbps = speed / 1000;
    const link = pickString(nic, 'LinkStatus');
    if (link) entry.linkUp = link === 'LinkUp';
    const ipv4 = pick(nic, 'IPv4Addresses');
    const ip = Array.isArray(ipv4) ? pickString(ipv4[0], 'Address') : undefined;
    if (ip) entry.ip = ip;
    nics.push(entry);
  }
  return nics;
}

async function readMemoryMebibytes(ctx: RedfishContext, target: BmcTarget, system: Record<string, unknown>): Promise<number | undefined> {
  const gib = pickNumber(system, 'MemorySummary', 'TotalSystemMemoryGiB');
  if (gib !== undefined) return Math.round(gib * 1024);
  const link = linkOf(system, 'Memory');
  if (!link) return undefined;
  let mib = 0;
  for (const dimm of await getMembers(ctx.client, target, link, 256)) mib += pickNumber(dimm, 'CapacityMiB') ?? 0;
  return mib > 0 ? mib : undefined;
}

async function readBiosVersionFromFirmwareInventory(ctx: RedfishContext, target: BmcTarget): Promise<string | undefined> {
  const root = await ctx.client.getOptional(target, '/redfish/v1');
  const updateService = linkOf(root, 'UpdateService');
  const service = updateService ? await ctx.client.getOptional(target, updateService) : undefined;
  const inventory = linkOf(service, 'FirmwareInventory');
  if (!inventory) return undefined;
  const items = await getMembers(ctx.client, target, inventory, 64);
  const bios = items.find((i) => /bios|uefi/i.test(`${pickString(i, 'Id') ?? ''} ${pickString(i, 'Name') ?? ''}`));
  return pickString(bios, 'Version');
}

async function readCpu(ctx: RedfishContext, target: BmcTarget, system: Record<string, unknown>, gpus: NonNullable<HardwareDetails['gpus']>): Promise<HardwareDetails['cpu']> {
  const cpu: NonNullable<HardwareDetails['cpu']> = {};
  const count = pickNumber(system, 'ProcessorSummary', 'Count');
  if (count !== undefined) cpu.count = count;
  const model = pickString(system, 'ProcessorSummary', 'Model');
  if (model) cpu.model = model;
  const summaryCores = pickNumber(system, 'ProcessorSummary', 'CoreCount');
  const summaryThreads = pickNumber(system, 'ProcessorSummary', 'LogicalProcessorCount');
  const link = linkOf(system, 'Processors');
  let cores = 0;
  let threads = 0;
  let sockets = 0;
  if (link) {
    for (const p of await getMembers(ctx.client, target, link, 64)) {
      const type = pickString(p, 'ProcessorType');
      if (type === 'GPU') {
        const model = pickString(p, 'Model');
        if (model) gpus.push({ model, ...(pickString(p, 'Manufacturer') ? { vendor: pickString(p, 'Manufacturer')! } : {}) });
        continue;
      }
      if (type && type !== 'CPU') continue; // FPGAs and accelerators are Processors too
      sockets++;
      cores += pickNumber(p, 'TotalCores') ?? 0;
      threads += pickNumber(p, 'TotalThreads') ?? 0;
      cpu.model ??= pickString(p, 'Model');
      const speed = pickNumber(p, 'MaxSpeedMHz') ?? pickNumber(p, 'OperatingSpeedMHz');
      if (speed !== undefined) cpu.speedMHz ??= speed;
      const arch = pickString(p, 'InstructionSet') ?? pickString(p, 'ProcessorArchitecture');
      if (arch) cpu.arch ??= ARCHES[arch] ?? arch;
    }
  }
  if (cpu.count === undefined && sockets > 0) cpu.count = sockets;
  if (cores > 0 || summaryCores !== undefined) cpu.cores = cores > 0 ? cores : summaryCores;
  if (threads > 0 || summaryThreads !== undefined) cpu.threads = threads > 0 ? threads : summaryThreads;
  for (const k of Object.keys(cpu) as Array<keyof typeof cpu>) if (cpu[k] === undefined) delete cpu[k];
  return Object.keys(cpu).length ? cpu : undefined;
}

function wwnOf(drive: unknown): string | undefined {
  const ids = pick(drive, 'Identifiers');
  if (!Array.isArray(ids)) return undefined;
  const naa = ids.find((i) => ['NAA', 'EUI', 'NGUID'].includes(pickString(i, 'DurableNameFormat') ?? '')) ?? ids[0];
  const name = pickString(naa, 'DurableName');
  if (!name) return undefined;
  return /^[0-9a-fA-F]+$/.test(name) && !name.startsWith('0x') ? `0x${name.toLowerCase()}` : name;
}

async function readStorage(ctx: RedfishContext, target: BmcTarget, system: Record<string, unknown>): Promise<Disk[]> {
  const disks: Disk[] = [];
  const storageLink = linkOf(system, 'Storage');
  if (storageLink) {
    for (const controller of await getMembers(ctx.client, target, storageLink, 32)) {
      const drives = pick(controller, 'Drives');
      if (!Array.isArray(drives)) continue;
      for (const ref of drives.slice(0, MAX_DRIVES - disks.length)) {
        const path = pickString(ref, '@odata.id');
        const drive = path ? await ctx.client.getOptional(target, path) : undefined;
        if (!drive) continue;
        const disk: Disk = { name: pickString(drive, 'Name') ?? pickString(drive, 'Id') ?? path!, sizeBytes: pickNumber(drive, 'CapacityBytes') ?? 0 };
        const media = pickString(drive, 'MediaType');
        if (media) disk.rotational = media === 'HDD';
        const serial = pickString(drive, 'SerialNumber');
        if (serial) disk.serialNumber = serial;
        const model = pickString(drive, 'Model');
        if (model) disk.model = model;
        const wwn = wwnOf(drive);
        if (wwn) disk.wwn = wwn;
        const protocol = pickString(drive, 'Protocol');
        if (protocol || media) disk.type = media === 'HDD' ? 'HDD' : protocol === 'NVMe' ? 'NVME' : media === 'SSD' ? 'SSD' : (protocol ?? media!);
        disks.push(disk);
      }
    }
  }
  if (disks.length > 0) return disks;
  // Older services (and sushy-tools) describe disks only through SimpleStorage.Devices.
  const simpleLink = linkOf(system, 'SimpleStorage');
  if (!simpleLink) return disks;
  for (const controller of await getMembers(ctx.client, target, simpleLink, 32)) {
    const devices = pick(controller, 'Devices');
    if (!Array.isArray(devices)) continue;
    for (const d of devices.slice(0, MAX_DRIVES - disks.length)) {
      const disk: Disk = { name: pickString(d, 'Name') ?? `disk${disks.length}`, sizeBytes: pickNumber(d, 'CapacityBytes') ?? 0 };
      const model = pickString(d, 'Model');
      if (model) disk.model = model;
      disks.push(disk);
    }
  }
  return disks;
}

export function redfishInventory(ctx: RedfishContext): InventoryInterface {
  return {
    async get(target) {
      const system = await ctx.client.get(target, await ctx.locator.locate(target), 'reading the system');
      const details: HardwareDetails = {};
      const vendor = {
        manufacturer: pickString(system, 'Manufacturer'),
        productName: pickString(system, 'Model'),
        serialNumber: pickString(system, 'SerialNumber'),
      };
      if (vendor.manufacturer || vendor.productName || vendor.serialNumber) {
        details.systemVendor = Object.fromEntries(Object.entries(vendor).filter(([, v]) => v !== undefined));
      }
      const gpus: NonNullable<HardwareDetails['gpus']> = [];
      const cpu = await readCpu(ctx, target, system, gpus);
      if (cpu) details.cpu = cpu;
      if (gpus.length > 0) details.gpus = gpus;
      const ram = await readMemoryMebibytes(ctx, target, system);
      if (ram !== undefined) details.ramMebibytes = ram;
      details.storage = await readStorage(ctx, target, system);
      details.nics = await readNics(ctx, target, system);
      const biosVersion = pickString(system, 'BiosVersion') ?? (await readBiosVersionFromFirmwareInventory(ctx, target));
      const manager = linkOf(system, 'Links', 'ManagedBy');
      const bmcVersion = manager ? pickString(await ctx.client.getOptional(target, manager), 'FirmwareVersion') : undefined;
      if (biosVersion || bmcVersion) {
        details.firmware = {
          ...(biosVersion ? { bios: { version: biosVersion } } : {}),
          ...(bmcVersion ? { bmc: { version: bmcVersion } } : {}),
        };
      }
      const secureBoot = linkOf(system, 'SecureBoot');
      details.secureBootCapable = secureBoot ? (await ctx.client.getOptional(target, secureBoot)) !== undefined : false;
      return details;
    },
  };
}
