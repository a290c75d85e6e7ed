// The machines of the lab: what each simulated server is (hardware, fixed at creation) and
// what it is doing (power, boot settings, BIOS, secure boot, virtual media, credentials), as
// plain data that is persisted to DATA_DIR/lab-state.json. Behaviour lives in lab-fleet.ts.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiskType, ProfileGroup } from './profile.js';
import type { VmDefinition } from './vm/vm-definition.js';

export type PowerState = 'On' | 'Off' | 'PoweringOn' | 'PoweringOff';

/** Redfish ComputerSystem.Boot.BootSourceOverrideTarget values the lab supports. */
export const BOOT_TARGETS = ['None', 'Pxe', 'Cd', 'Hdd', 'UefiHttp', 'BiosSetup'] as const;
export type BootTarget = (typeof BOOT_TARGETS)[number];
export const BOOT_OVERRIDE_ENABLED = ['Disabled', 'Once', 'Continuous'] as const;
export type BootOverrideEnabled = (typeof BOOT_OVERRIDE_ENABLED)[number];
export const BOOT_MODES = ['UEFI', 'Legacy'] as const;
export type BootMode = (typeof BOOT_MODES)[number];

/** Redfish ResetType values the lab implements (Resource.ResetType). */
export const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'PowerCycle', 'Nmi'] as const;
export type ResetType = (typeof RESET_TYPES)[number];

export interface ProcessorInfo {
  id: string;
  type: 'CPU' | 'GPU';
  manufacturer: string;
  model: string;
  socket: string;
  cores: number;
  threads: number;
  maxSpeedMHz: number;
}

export interface MemoryInfo {
  id: string;
  capacityMiB: number;
  speedMHz: number;
  deviceType: 'DDR4' | 'DDR5';
  manufacturer: string;
  serialNumber: string;
}

export interface DriveInfo {
  id: string;
  /** Position of the disk; its backing file is DATA_DIR/systems/<id>/disk-<index>.img. */
  index: number;
  type: DiskType;
  sizeBytes: number;
  model: string;
  serialNumber: string;
  /** NAA-style World Wide Name, 16 hex digits. */
  wwn: string;
}

export interface NicInfo {
  id: string;
  mac: string;
  speedMbps: number;
}

export interface SystemHardware {
  manufacturer: string;
  model: string;
  serialNumber: string;
  sku: string;
  biosVersion: string;
  bmcFirmwareVersion: string;
  processors: ProcessorInfo[];
  memory: MemoryInfo[];
  drives: DriveInfo[];
  nics: NicInfo[];
  secureBootCapable: boolean;
}

/** One boot the lab observed; tests (and later the agent runner) read these. */
export interface BootRecord {
  at: string;
  source: 'cd' | 'hdd' | 'pxe' | 'uefi-http' | 'bios-setup';
  /** For cd: the virtual media image inserted at boot time; null when the drive was empty. */
  mediaUrl?: string | null;
  /** For pxe / uefi-http: the NIC that boots. */
  mac?: string;
  mode: BootMode;
  secureBoot: boolean;
  override: BootOverrideEnabled;
  /** For cd boots of an Ingot agent medium: what the lab did with it (agent-runner.ts). */
  /**
   * For cd boots of an agent medium: whether the agent started, and where it runs: 'process' (its
   * own `ingot agent` child process, pid given) or 'in-process' (inside the lab process).
   */
  agent?: { started: boolean; mode?: 'process' | 'in-process'; pid?: number; hostUid?: string; bootId?: string; error?: string };
  /** For hdd boots: what the lab found on the boot disk (added shortly after the boot). */
  disk?: DiskFindings;
}

/** What a boot from disk finds there: the partition table and the config drive, if any. */
export interface DiskFindings {
  drive: number;
  partitionTable: 'gpt' | 'mbr' | 'none';
  partitions: Array<{ number: number; name: string; firstLba: number; lastLba: number; typeGuid: string }>;
  /** The config-2 partition (cloud-init ConfigDrive): its files, meta data and a digest of the user data (never the user data). */
  configDrive?: { files: string[]; metaData?: Record<string, unknown>; userDataSha256?: string; error?: string };
  error?: string;
}

export type BiosValue = string | number | boolean;

export interface PowerStep {
  state: 'PoweringOn' | 'PoweringOff';
  /** Epoch milliseconds at which this step ends. */
  until: number;
}

export interface SystemState {
  id: string;
  /** Position in the lab, 0-based; seeds deterministic MACs and serials. */
  index: number;
  uuid: string;
  hardware: SystemHardware;
  credentials: { username: string; password: string };
  assetTag: string;
  power: {
    /** Where the system is once `steps` are done (and now, when there are none). */
    state: 'On' | 'Off';
    steps: PowerStep[];
    /** Task tracking the running transition, if any. */
    taskId?: string;
  };
  boot: { target: BootTarget; enabled: BootOverrideEnabled; mode: BootMode };
  bios: { current: Record<string, BiosValue>; pending: Record<string, BiosValue> };
  secureBoot: { enabled: boolean; currentBoot: boolean };
  media: { image: string | null; inserted: boolean; writeProtected: boolean };
  bootLog: BootRecord[];
  /** Present when the system is a real QEMU virtual machine (src/lab/vm/); absent when simulated. */
  vm?: VmDefinition;
}

export interface BiosAttributeDef {
  type: 'Enumeration' | 'Integer' | 'Boolean' | 'String';
  default: BiosValue;
  values?: readonly string[];
  min?: number;
  max?: number;
  readOnly?: boolean;
}

/** The BIOS attributes every lab machine has (an AttributeRegistry in miniature). */
export const BIOS_ATTRIBUTES: Record<string, BiosAttributeDef> = {
  BootMode: { type: 'Enumeration', default: 'Uefi', values: ['Uefi', 'Bios'] },
  ProcVirtualization: { type: 'Enumeration', default: 'Enabled', values: ['Enabled', 'Disabled'] },
  ProcHyperThreading: { type: 'Enumeration', default: 'Enabled', values: ['Enabled', 'Disabled'] },
  SriovGlobalEnable: { type: 'Enumeration', default: 'Disabled', values: ['Enabled', 'Disabled'] },
  PxeIpVersion: { type: 'Enumeration', default: 'IPv4', values: ['IPv4', 'IPv6'] },
  UefiHttpBoot: { type: 'Enumeration', default: 'Enabled', values: ['Enabled', 'Disabled'] },
  WorkloadProfile: { type: 'Enumeration', default: 'Balanced', values: ['Balanced', 'MaxPerformance', 'PowerSaving'] },
  BootTimeoutSeconds: { type: 'Integer', default: 10, min: 0, max: 600 },
  TpmEnabled: { type: 'Boolean', default: true },
  AssetTagBios: { type: 'String', default: '', max: 64 },
  SystemSerial: { type: 'String', default: '', readOnly: true },
};

export function defaultBios(serial: string): Record<string, BiosValue> {
  const out: Record<string, BiosValue> = {};
  for (const [name, def] of Object.entries(BIOS_ATTRIBUTES)) out[name] = def.default;
  out.SystemSerial = serial;
  return out;
}

/** System ids are `node-001` …; zero padding grows with the lab so ids sort. */
export function systemId(index: number, total: number): string {
  const width = Math.max(3, String(total).length);
  return `node-${String(index + 1).padStart(width, '0')}`;
}

/**
 * Deterministic, locally administered MACs (52:54:00 is the QEMU/KVM OUI, which DHCP and PXE
 * tooling already treat as virtual): 52:54:00:<index hi>:<index lo>:<nic>. Unique for up to
 * 65,536 systems of up to 256 NICs.
 */
export function macAddress(index: number, nic: number): string {
  const bytes = [0x52, 0x54, 0x00, (index >> 8) & 0xff, index & 0xff, nic & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function hexDigest(seed: string, length: number): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, length);
}

/** A version-5-style UUID from a name, so a system keeps its UUID when the lab is rebuilt. */
export function nameUuid(name: string): string {
  const h = createHash('sha1').update(`ingot-lab:${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** A random password BMC-style: 20 characters from an unambiguous alphabet. */
export function generatePassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = randomBytes(20);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

const DRIVE_MODELS: Record<DiskType, string> = {
  nvme: 'Ingot Lab NVMe SSD',
  ssd: 'Ingot Lab SATA SSD',
  sata: 'Ingot Lab SATA HDD',
  hdd: 'Ingot Lab SAS HDD',
  virtio: 'QEMU virtio-blk disk',
};

function dimmLayout(ramGiB: number): number[] {
  for (const size of [64, 32, 16, 8, 4, 2, 1]) {
    if (ramGiB % size === 0 && ramGiB / size >= 2 && ramGiB / size <= 32) return Array(ramGiB / size).fill(size) as number[];
  }
  return [ramGiB];
}

/** Builds a machine from its profile group. Everything but the password is derived from the index. */
export function buildSystem(index: number, total: number, group: ProfileGroup): SystemState {
  const id = systemId(index, total);
  const serial = `LAB${hexDigest(`serial:${id}`, 10).toUpperCase()}`;
  const coresPerCpu = group.coresPerCpu ?? 8;
  const threadsPerCore = group.threadsPerCore ?? 2;
  const processors: ProcessorInfo[] = [];
  for (let s = 0; s < group.cpus; s++) {
    processors.push({
      id: `CPU${s}`,
      type: 'CPU',
      manufacturer: 'Intel(R) Corporation',
      model: `Intel(R) Xeon(R) Lab ${coresPerCpu}-core CPU @ 2.40GHz`,
      socket: `CPU ${s + 1}`,
      cores: coresPerCpu,
      threads: coresPerCpu * threadsPerCore,
      maxSpeedMHz: 3600,
    });
  }
  let g = 0;
  for (const gpu of group.gpus ?? []) {
    for (let i = 0; i < gpu.count; i++) {
      processors.push({ id: `GPU${g}`, type: 'GPU', manufacturer: 'NVIDIA', model: gpu.model, socket: `PCIe Slot ${g + 1}`, cores: 0, threads: 0, maxSpeedMHz: 1980 });
      g++;
    }
  }
  const memory: MemoryInfo[] = dimmLayout(group.ramGiB).map((gib, i) => ({
    id: `DIMM${i}`,
    capacityMiB: gib * 1024,
    speedMHz: 3200,
    deviceType: 'DDR4',
    manufacturer: 'Ingot Lab Memory',
    serialNumber: hexDigest(`dimm:${id}:${i}`, 8).toUpperCase(),
  }));
  const drives: DriveInfo[] = group.disks.map((d, i) => ({
    id: String(i),
    index: i,
    type: d.type,
    sizeBytes: d.sizeMiB !== undefined ? d.sizeMiB * 1024 ** 2 : (d.sizeGiB ?? 1) * 1024 ** 3,
    model: DRIVE_MODELS[d.type],
    serialNumber: `D${hexDigest(`disk:${id}:${i}`, 12).toUpperCase()}`,
    wwn: `5${hexDigest(`wwn:${id}:${i}`, 15)}`,
  }));
  const nics: NicInfo[] = Array.from({ length: group.nics ?? 2 }, (_, n) => ({ id: `NIC${n + 1}`, mac: macAddress(index, n), speedMbps: 25_000 }));
  return {
    id,
    index,
    uuid: nameUuid(id),
    hardware: {
      manufacturer: group.manufacturer ?? 'Ingot Lab',
      model: group.model ?? (group.name ? `Lab Server ${group.name}` : 'Lab Server L1'),
      serialNumber: serial,
      sku: `SKU-${group.cpus}S-${group.ramGiB}G`,
      biosVersion: '2.14.1',
      bmcFirmwareVersion: '1.8.0',
      processors,
      memory,
      drives,
      nics,
      secureBootCapable: group.secureBootCapable ?? true,
    },
    credentials: { username: 'admin', password: generatePassword() },
    assetTag: '',
    power: { state: 'Off', steps: [] },
    boot: { target: 'None', enabled: 'Disabled', mode: 'UEFI' },
    bios: { current: defaultBios(serial), pending: {} },
    secureBoot: { enabled: false, currentBoot: false },
    media: { image: null, inserted: false, writeProtected: true },
    bootLog: [],
  };
}

export function diskPath(dataDir: string, systemId: string, index: number): string {
  return join(dataDir, 'systems', systemId, `disk-${index}.img`);
}

/**
 * Returns the path of a drive's backing file, creating it as a sparse file of the drive's size
 * on first use (ftruncate allocates no blocks), so a lab of 1,000 machines costs no disk space
 * until something writes.
 */
export async function ensureDiskFile(dataDir: string, system: SystemState, index: number): Promise<string> {
  const drive = system.hardware.drives[index];
  if (!drive) throw new Error(`system ${system.id} has no drive ${index}; it has ${system.hardware.drives.length}`);
  const path = diskPath(dataDir, system.id, index);
  const existing = await stat(path).catch(() => undefined);
  if (existing && existing.size >= drive.sizeBytes) return path;
  await mkdir(join(dataDir, 'systems', system.id), { recursive: true });
  const handle = await open(path, existing ? 'r+' : 'w', 0o600);
  try {
    await handle.truncate(drive.sizeBytes);
  } finally {
    await handle.close();
  }
  return path;
}
