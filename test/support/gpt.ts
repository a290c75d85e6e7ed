// Test fixtures for partition tables: the GPT writer lives in src/images/gpt-writer.ts (the
// quickstart builds its image with it); this adds a classic MBR writer for hostile-image tests.
export { EFI_SYSTEM_GUID, FIRST_USABLE_LBA, guidBytes, LINUX_FILESYSTEM_GUID, writeGpt, type GptPartitionSpec } from '../../src/images/gpt-writer.js';

export interface MbrPartitionSpec {
  type: number;
  startLba: number;
  sectors: number;
  bootable?: boolean;
}

/** Writes a classic MBR partition table (up to 4 primary entries) onto `disk` in place. */
export function writeMbr(disk: Buffer, partitions: MbrPartitionSpec[]): Buffer {
  partitions.slice(0, 4).forEach((p, i) => {
    const e = 446 + i * 16;
    disk[e] = p.bootable ? 0x80 : 0x00;
    disk[e + 4] = p.type;
    disk.writeUInt32LE(p.startLba, e + 8);
    disk.writeUInt32LE(p.sectors, e + 12);
  });
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}
