// Capabilities derived from a host's inspected hardware: the short, stable facts node types
// select on (secure boot, GPUs, NIC speed, disk kinds), so selectors need not dig through the
// raw inventory, and the derivation lives in one place (Ironic derives its `capabilities` the
// same way after inspection).
import type { HardwareDetails } from './host.js';

export interface HostCapabilities {
  /** Boot modes the firmware offers; UEFISecureBoot only when secure boot is supported. */
  bootModes: Array<'UEFI' | 'UEFISecureBoot' | 'legacy'>;
  secureBoot: boolean;
  cpuArch?: string;
  /** GPUs grouped by model, most numerous first. */
  gpus: Array<{ model: string; count: number }>;
  /** Fastest NIC link speed reported, in Gb/s. */
  maxNicSpeedGbps?: number;
  /** Kinds of disk present: nvme, ssd (non-rotational, not NVMe), hdd (rotational). */
  diskKinds: Array<'nvme' | 'ssd' | 'hdd'>;
}

export function deriveCapabilities(hardware: HardwareDetails | undefined): HostCapabilities {
  const secureBoot = hardware?.secureBootCapable === true;
  const gpuCounts = new Map<string, number>();
  for (const gpu of hardware?.gpus ?? []) gpuCounts.set(gpu.model, (gpuCounts.get(gpu.model) ?? 0) + 1);
  const gpus = [...gpuCounts].map(([model, count]) => ({ model, count })).sort((a, b) => b.count - a.count || a.model.localeCompare(b.model));
  const speeds = (hardware?.nics ?? []).map((n) => n.speedGbps).filter((s): s is number => typeof s === 'number' && s > 0);
  const kinds = new Set<'nvme' | 'ssd' | 'hdd'>();
  for (const disk of hardware?.storage ?? []) {
    if (/nvme/i.test(disk.type ?? '') || /nvme/i.test(disk.name)) kinds.add('nvme');
    else if (disk.rotational === true) kinds.add('hdd');
    else kinds.add('ssd');
  }
  const order = ['nvme', 'ssd', 'hdd'] as const;
  return {
    bootModes: secureBoot ? ['UEFI', 'UEFISecureBoot', 'legacy'] : ['UEFI', 'legacy'],
    secureBoot,
    ...(hardware?.cpu?.arch ? { cpuArch: hardware.cpu.arch } : {}),
    gpus,
    ...(speeds.length > 0 ? { maxNicSpeedGbps: Math.max(...speeds) } : {}),
    diskKinds: order.filter((k) => kinds.has(k)),
  };
}
