// What the agent needs from the machine it runs on. Two implementations: linux-machine.ts (a
// real host: /proc, /sys, lsblk, ip, dmidecode) and file-machine.ts (the lab: a JSON machine
// description and disk image files).
import type { HardwareDetails } from '../model/host.js';

export interface MachineDisk {
  /** Short name as the OS shows it (sda, nvme0n1, vda). */
  name: string;
  /** Absolute path of the device (or disk image file): what qemu-img writes to. */
  path: string;
  sizeBytes: number;
  rotational: boolean;
  serial?: string;
  wwn?: string;
}

export interface OpenDisk {
  readonly size: number;
  write(buf: Buffer, offset: number): Promise<void>;
  read(offset: number, length: number): Promise<Buffer>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface MachineAccess {
  inventory(): Promise<HardwareDetails>;
  disks(): Promise<MachineDisk[]>;
  /** Opens a disk by name for reading and writing; refuses when writes are not enabled. */
  openDisk(name: string): Promise<OpenDisk>;
  /** A directory for scratch files (downloaded qcow2 images): RAM on a real agent. */
  scratchDir(): string;
  /**
   * Erases the whole disk with the device's own secure erase when the device supports one
   * whose result reads back as zeros (NVMe format with secure erase, ATA security erase,
   * discard that guarantees zeroes); resolves to the method used, or undefined when the disk
   * has none (the caller writes zeros). Absent: no disk has one (the lab's disk files).
   */
  secureErase?(disk: MachineDisk, opts: { signal?: AbortSignal }): Promise<{ method: string } | undefined>;
}
