// Cleaning (DESIGN.md "Host lifecycle", deprovisioning). Two modes:
// - metadata: zero the first and last MiB of every disk. The first MiB holds the MBR, the
//   primary GPT (LBA 1-33), and the signatures blkid/wipefs look for near the start: ext2/3/4
//   superblock at 1024, XFS and btrfs (64 KiB), LVM2 label (sectors 0-3), mdraid 1.1/1.2
//   (0 / 4 KiB), swap, LUKS. The last MiB holds the backup GPT (last 33 sectors) and mdraid
//   0.90/1.0 superblocks (within the last 64-128 KiB). This matches what Ironic's
//   erase_devices_metadata achieves with wipefs plus zeroing both GPT copies.
// - full: zeros over every byte of every disk, reporting progress.
import type { MachineAccess } from './machine.js';

const MIB = 1024 * 1024;

export interface CleanOptions {
  mode: 'metadata' | 'full';
  onProgress?(percent: number, message: string): void;
  signal?: AbortSignal;
}

async function zeroRange(machine: MachineAccess, name: string, start: number, end: number, onBytes?: (n: number) => void, signal?: AbortSignal): Promise<void> {
  const disk = await machine.openDisk(name);
  try {
    const zeros = Buffer.alloc(4 * MIB);
    for (let at = start; at < end; ) {
      signal?.throwIfAborted();
      const n = Math.min(zeros.length, end - at);
      await disk.write(zeros.subarray(0, n), at);
      at += n;
      onBytes?.(n);
    }
    await disk.sync();
  } finally {
    await disk.close();
  }
}

export async function cleanDisks(machine: MachineAccess, opts: CleanOptions): Promise<{ disks: string[]; bytesZeroed: number }> {
  const disks = await machine.disks();
  let zeroed = 0;
  if (opts.mode === 'metadata') {
    for (const disk of disks) {
      const head = Math.min(MIB, disk.sizeBytes);
      await zeroRange(machine, disk.name, 0, head, (n) => (zeroed += n), opts.signal);
      const tailStart = Math.max(head, disk.sizeBytes - MIB);
      await zeroRange(machine, disk.name, tailStart, disk.sizeBytes, (n) => (zeroed += n), opts.signal);
      opts.onProgress?.(Math.round((100 * (disks.indexOf(disk) + 1)) / disks.length), `erased metadata of ${disk.name}`);
    }
    return { disks: disks.map((d) => d.name), bytesZeroed: zeroed };
  }
  const total = disks.reduce((s, d) => s + d.sizeBytes, 0) || 1;
  let lastPercent = -1;
  for (const disk of disks) {
    await zeroRange(
      machine,
      disk.name,
      0,
      disk.sizeBytes,
      (n) => {
        zeroed += n;
        const percent = Math.floor((100 * zeroed) / total);
        if (percent !== lastPercent) {
          lastPercent = percent;
          opts.onProgress?.(percent, `writing zeros over ${disk.name}`);
        }
      },
      opts.signal,
    );
  }
  return { disks: disks.map((d) => d.name), bytesZeroed: zeroed };
}
