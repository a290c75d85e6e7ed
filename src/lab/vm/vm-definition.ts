// What a lab VM is made of, fixed when the lab first creates it and kept in lab-state.json:
// vCPUs, memory, one virtio disk per drive (raw or qcow2 file), one virtio NIC per MAC. The
// system's Redfish inventory (hardware) is derived from it, so what the BMC reports is what
// QEMU runs and what an agent inside the VM finds.
import { join } from 'node:path';
import { buildSystem, type SystemState } from '../lab-model.js';

export const VM_DISK_FORMATS = ['raw', 'qcow2'] as const;
export type VmDiskFormat = (typeof VM_DISK_FORMATS)[number];

export interface VmDefinition {
  vcpus: number;
  memoryMiB: number;
  diskFormat: VmDiskFormat;
}

export interface VmShape {
  vcpus?: number;
  memoryMiB?: number;
  diskGiB?: number;
  diskFormat?: VmDiskFormat;
  /** Network interfaces (the first is the boot NIC); default 1. */
  nics?: number;
}

export const VM_DEFAULTS = { vcpus: 2, memoryMiB: 1536, diskGiB: 8, diskFormat: 'raw', nics: 1 } as const;
export const VM_LIMITS = { vcpus: 16, memoryMiB: 64 * 1024, diskGiB: 1024, nics: 4 } as const;

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name} must be a whole number from ${min} to ${max}; got ${value}`);
}

/** Validates a shape and fills the defaults. */
export function resolveVmShape(shape: VmShape = {}): Required<VmShape> {
  const s = { ...VM_DEFAULTS, ...shape };
  checkRange('--vm-cpus', s.vcpus, 1, VM_LIMITS.vcpus);
  // Below 256 MiB OVMF itself does not start reliably.
  checkRange('--vm-memory', s.memoryMiB, 256, VM_LIMITS.memoryMiB);
  checkRange('--vm-disk-size', s.diskGiB, 1, VM_LIMITS.diskGiB);
  checkRange('VM NICs', s.nics, 1, VM_LIMITS.nics);
  if (!(VM_DISK_FORMATS as readonly string[]).includes(s.diskFormat)) throw new Error(`--vm-disk-format must be one of ${VM_DISK_FORMATS.join(', ')}; got ${String(s.diskFormat)}`);
  return s;
}

/** The lab system for VM number `index`: the usual identity (id, MACs, serials, password) with the VM's hardware. */
export function buildVmSystem(index: number, total: number, shape: Required<VmShape>): SystemState {
  const system = buildSystem(index, total, {
    count: 1,
    cpus: 1,
    coresPerCpu: shape.vcpus,
    threadsPerCore: 1,
    ramGiB: 1,
    disks: [{ type: 'virtio', sizeGiB: shape.diskGiB }],
    nics: shape.nics,
    manufacturer: 'QEMU',
    model: 'Standard PC (Q35 + ICH9, 2009)',
  });
  const hw = system.hardware;
  hw.processors = hw.processors.map((p) => ({ ...p, manufacturer: 'QEMU', model: 'QEMU Virtual CPU', maxSpeedMHz: 0 }));
  hw.memory = [{ id: 'DIMM0', capacityMiB: shape.memoryMiB, speedMHz: 0, deviceType: 'DDR4', manufacturer: 'QEMU', serialNumber: hw.memory[0]?.serialNumber ?? '' }];
  // virtio-net reports the speed QEMU is told (speed=); 1 Gb/s is what the VM is given.
  hw.nics = hw.nics.map((n) => ({ ...n, speedMbps: 1000 }));
  hw.biosVersion = 'edk2 OVMF (Debian ovmf package)';
  hw.sku = `VM-${shape.vcpus}C-${shape.memoryMiB}M`;
  system.vm = { vcpus: shape.vcpus, memoryMiB: shape.memoryMiB, diskFormat: shape.diskFormat };
  return system;
}

/** Files of one VM, all under DATA_DIR/systems/<id>/. */
export function vmPaths(dataDir: string, system: SystemState) {
  const dir = join(dataDir, 'systems', system.id);
  const ext = system.vm?.diskFormat === 'qcow2' ? 'qcow2' : 'img';
  return {
    dir,
    disk: (index: number) => join(dir, `disk-${index}.${ext}`),
    /** The VM's own copy of the UEFI variable store. */
    uefiVars: join(dir, 'uefi-vars.fd'),
    /** Which template the variable store was copied from (Secure Boot on or off). */
    uefiVarsTemplate: join(dir, 'uefi-vars.template'),
    /** Everything the VM writes to its first serial port, across boots. */
    console: join(dir, 'console.log'),
    /** QEMU's own messages (stderr). */
    qemuLog: join(dir, 'qemu.log'),
    /** Images the BMC fetched for its virtual CD. */
    mediaDir: join(dir, 'media'),
  };
}
