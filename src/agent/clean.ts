// Cleaning (DESIGN.md "Host lifecycle", deprovisioning). Two modes:
// - metadata: the signatures of every partition and of what it contains, then the partition
//   tables at both ends of each disk, verified by reading back (metadata-erase.ts).
// - full: zeros over every byte of every disk, reporting progress.
import { eraseDiskMetadata } from './metadata-erase.js';
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
    for (const [i, disk] of disks.entries()) {
      const open = await machine.openDisk(disk.name);
      try {
        const result = await eraseDiskMetadata(open, disk.name, { onStep: (message) => opts.onProgress?.(Math.round((100 * i) / disks.length), message), signal: opts.signal });
        zeroed += result.bytesZeroed;
      } finally {
        await open.close();
      }
      opts.onProgress?.(Math.round((100 * (i + 1)) / disks.length), `erased and verified the metadata of ${disk.name}`);
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
