// The hardware of a fake host, derived from its NAME by hashing: the same name always gives the
// same vendor, serial numbers, disks and MAC addresses (across processes and restarts), and
// different names give different machines, so inventory, root-device hints and boot-MAC checks
// can be tested against stable values without storing anything.
import { createHash } from 'node:crypto';
import type { HardwareDetails } from '../../model/host.js';
import type { FirmwareComponent } from '../driver.js';

const VENDORS = [
  { manufacturer: 'Fakerack', models: ['FR-1100', 'FR-2200', 'FR-4400'] },
  { manufacturer: 'Simulon', models: ['S9 Compute', 'S9 Storage'] },
  { manufacturer: 'Imaginary Systems', models: ['IS-R640', 'IS-R750'] },
] as const;
const CPU_MODELS = ['Fake Xeon Gold 6338 @ 2.00GHz', 'Fake EPYC 7543 32-Core', 'Fake Xeon Silver 4314 @ 2.40GHz'] as const;
const RAM_MIB = [32_768, 65_536, 131_072, 262_144] as const;
const SSD_GB = [240, 480, 960, 1920] as const;
const HDD_TB = [2, 4, 8, 12] as const;
const GB = 1_000_000_000;

/** Deterministic bytes for `name` and a purpose (so each field draws independent bytes). */
function bytesOf(name: string, purpose: string): Buffer {
  return createHash('sha256').update(`ingot-fake:${purpose}:${name}`).digest();
}

function pick<T>(list: readonly T[], byte: number): T {
  return list[byte % list.length]!;
}

function hex(buf: Buffer, length: number): string {
  return buf.subarray(0, Math.ceil(length / 2)).toString('hex').slice(0, length).toUpperCase();
}

/** 52:54:00 is the locally administered prefix QEMU uses; the last three octets come from the name. */
export function fakeMac(name: string, index: number): string {
  const b = bytesOf(name, `nic${index}`);
  return ['52', '54', '00', ...[b[0]!, b[1]!, b[2]!].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

/** A stable RFC 4122-shaped UUID (version 5 style bits) for the system. */
export function fakeUuid(name: string): string {
  const b = Buffer.from(bytesOf(name, 'uuid').subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function fakeInventory(name: string, secureBootCapable: boolean): HardwareDetails {
  const b = bytesOf(name, 'inventory');
  const vendor = pick(VENDORS, b[0]!);
  const sockets = 1 + (b[3]! % 2);
  const coresPerSocket = pick([8, 16, 24, 32] as const, b[4]!);
  const ssdBytes = pick(SSD_GB, b[5]!) * GB;
  const hddBytes = pick(HDD_TB, b[6]!) * 1000 * GB;
  return {
    systemVendor: {
      manufacturer: vendor.manufacturer,
      productName: pick(vendor.models, b[1]!),
      serialNumber: `FK${hex(bytesOf(name, 'serial'), 10)}`,
    },
    cpu: {
      arch: 'x86_64',
      model: pick(CPU_MODELS, b[2]!),
      count: sockets,
      cores: sockets * coresPerSocket,
      threads: sockets * coresPerSocket * 2,
      speedMHz: 2000 + (b[7]! % 5) * 100,
    },
    ramMebibytes: pick(RAM_MIB, b[8]!),
    storage: [
      {
        name: '/dev/sda',
        sizeBytes: ssdBytes,
        rotational: false,
        serialNumber: `S${hex(bytesOf(name, 'disk0'), 13)}`,
        wwn: `0x5002538${hex(bytesOf(name, 'wwn0'), 9).toLowerCase()}`,
        model: 'FAKE SSD',
        type: 'SSD',
      },
      {
        name: '/dev/sdb',
        sizeBytes: hddBytes,
        rotational: true,
        serialNumber: `Z${hex(bytesOf(name, 'disk1'), 7)}`,
        wwn: `0x5000c50${hex(bytesOf(name, 'wwn1'), 9).toLowerCase()}`,
        model: 'FAKE HDD',
        type: 'HDD',
      },
    ],
    nics: [
      { name: 'eno1', mac: fakeMac(name, 0), speedGbps: 25, linkUp: true },
      { name: 'eno2', mac: fakeMac(name, 1), speedGbps: 25, linkUp: b[9]! % 4 !== 0 },
    ],
    firmware: {
      bios: { vendor: vendor.manufacturer, version: `2.${b[10]! % 20}.${b[11]! % 10}`, date: '2025-06-01' },
      bmc: { version: `7.${b[12]! % 10}.${b[13]! % 100}` },
    },
    secureBootCapable,
  };
}

export function fakeFirmware(name: string): FirmwareComponent[] {
  const inv = fakeInventory(name, true);
  const b = bytesOf(name, 'firmware');
  return [
    { id: 'bios', name: 'System BIOS', version: inv.firmware!.bios!.version! },
    { id: 'bmc', name: 'BMC firmware', version: inv.firmware!.bmc!.version! },
    { id: 'nic-eno1', name: 'Fake 25GbE NIC', version: `22.${b[0]! % 40}.${b[1]! % 10}` },
    { id: 'disk-sda', name: 'FAKE SSD firmware', version: `GDC${b[2]! % 10}${b[3]! % 10}02Q` },
  ];
}

/** BIOS settings a freshly reset fake host has (Redfish Bios attribute names, as Dell/HPE use them). */
export const FAKE_BIOS_DEFAULTS: Readonly<Record<string, string | number | boolean>> = Object.freeze({
  BootMode: 'Uefi',
  ProcTurboMode: 'Enabled',
  LogicalProc: 'Enabled',
  SriovGlobalEnable: 'Disabled',
  ProcVirtualization: 'Enabled',
  PowerProfile: 'PerfPerWattOptimizedDapc',
  SerialComm: 'OnConRedirCom1',
  MemTestOnBoot: false,
  BootRetryCount: 3,
});

/** Allowed values for enumerated BIOS attributes; other attributes only need the default's type. */
export const FAKE_BIOS_ENUMS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  BootMode: ['Uefi', 'Bios'],
  ProcTurboMode: ['Enabled', 'Disabled'],
  LogicalProc: ['Enabled', 'Disabled'],
  SriovGlobalEnable: ['Enabled', 'Disabled'],
  ProcVirtualization: ['Enabled', 'Disabled'],
  PowerProfile: ['PerfPerWattOptimizedDapc', 'PerfOptimized', 'MaxPerformance'],
  SerialComm: ['OnConRedirCom1', 'OnConRedirCom2', 'Off'],
});
