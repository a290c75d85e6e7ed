// The config drive on MBR images: images partitioned by sfdisk (label dos), the config drive
// added as a new primary partition at the end of the disk, and the result read back by sfdisk
// and blkid, the tools a booting OS and cloud-init rely on.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeConfigDrive } from '../agent/config-drive.js';
import { openFileDisk } from '../agent/file-disk.js';
import { appendMbrPartition, isClassicMbr, MbrError, readMbrPartitions } from './mbr.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const dir = mkdtempSync(join(tmpdir(), 'ingot-mbr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** A sparse disk file of `bytes`, partitioned by sfdisk with `script` (label dos). */
function sfdiskDisk(bytes: number, script: string): string {
  const file = join(dir, `disk-${++counter}.img`);
  execFileSync('truncate', ['-s', String(bytes), file]);
  execFileSync('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', file], { input: `label: dos\n${script}` });
  return file;
}

interface SfdiskTable {
  partitiontable: { label: string; partitions: Array<{ node: string; start: number; size: number; type: string; bootable?: boolean }> };
}
const tableOf = (file: string) => (JSON.parse(execFileSync('sfdisk', ['--json', file], { encoding: 'utf8' })) as SfdiskTable).partitiontable;

describe('config drive on MBR images', () => {
  it('adds a primary partition at the end of the disk that sfdisk lists and blkid reads as the config-2 ISO 9660 volume', async () => {
    const file = sfdiskDisk(64 * MIB, 'start=2048, size=16384, type=83, bootable\nstart=18432, size=8192, type=82\n');
    const disk = await openFileDisk(file, 64 * MIB);
    try {
      const added = await writeConfigDrive(disk, { metaData: { uuid: 'u-1', name: 'mbr' }, userData: '#cloud-config\n' });
      expect(added).toMatchObject({ table: 'mbr', number: 3 });
    } finally {
      await disk.close();
    }
    const table = tableOf(file);
    expect(table.label).toBe('dos');
    expect(table.partitions.map((p) => [p.start, p.size, p.type])).toEqual([
      [2048, 16384, '83'],
      [18432, 8192, '82'],
      [64 * 2048 - 2048, 2048, '83'],
    ]);
    expect(table.partitions[0]!.bootable).toBe(true);
    // `sfdisk --verify` checks overlaps and bounds of what we wrote.
    expect(spawnSync('sfdisk', ['--verify', file], { encoding: 'utf8' }).status).toBe(0);
    const probe = execFileSync('blkid', ['-p', '-O', String((64 * 2048 - 2048) * 512), '-o', 'export', file], { encoding: 'utf8' });
    expect(probe).toMatch(/^TYPE=iso9660$/m);
    expect(probe).toMatch(/^LABEL=config-2$/m);
  });

  it('counts an extended partition (and its logical ones) as used space', async () => {
    const file = sfdiskDisk(64 * MIB, 'start=2048, size=8192, type=83\nstart=10240, size=40960, type=5\nstart=12288, size=8192, type=83\n');
    const disk = await openFileDisk(file, 64 * MIB);
    try {
      const added = await appendMbrPartition(disk, { sizeBytes: 100 * 1024 });
      expect(added).toMatchObject({ number: 3, startLba: 64 * 2048 - 2048, sectors: 2048 });
      // No room after the extended partition's end for more than the free space.
      await expect(appendMbrPartition(disk, { sizeBytes: 20 * MIB })).rejects.toThrow(/no room for a 20971520-byte config drive partition after the last partition/);
    } finally {
      await disk.close();
    }
    expect(tableOf(file).partitions.map((p) => p.node.replace(file, ''))).toEqual(['1', '2', '3', '5']);
  });

  it('refuses when the four primary slots are taken, saying what to change, and writes nothing', async () => {
    const file = sfdiskDisk(64 * MIB, 'size=8192\nsize=8192\nsize=8192\nsize=8192\n');
    const disk = await openFileDisk(file, 64 * MIB);
    try {
      const before = await disk.read(0, 512);
      await expect(writeConfigDrive(disk, { metaData: { uuid: 'u' } })).rejects.toThrow(MbrError);
      await expect(appendMbrPartition(disk, { sizeBytes: 1 })).rejects.toThrow(/all four primary MBR partitions are in use.*at most three primary partitions/);
      expect((await disk.read(0, 512)).equals(before)).toBe(true);
    } finally {
      await disk.close();
    }
  });

  it('on a disk over 2 TiB, puts the partition at the end of the first 2 TiB, the most an MBR addresses', async () => {
    const file = sfdiskDisk(3 * 1024 * GIB, 'start=2048, size=16384, type=83\n');
    const disk = await openFileDisk(file, 3 * 1024 * GIB);
    try {
      const added = await appendMbrPartition(disk, { sizeBytes: 64 * 1024 });
      expect(added.startLba + added.sectors).toBeLessThanOrEqual(2 ** 32);
      expect(added.startLba).toBe(2 ** 32 - 2048);
    } finally {
      await disk.close();
    }
    const last = tableOf(file).partitions[1]!;
    expect([last.start, last.size]).toEqual([2 ** 32 - 2048, 2048]);
  });

  it('tells a table from a GPT protective MBR and from a boot sector without one', () => {
    const sector = Buffer.alloc(512);
    expect(isClassicMbr(sector)).toBe(false);
    sector[510] = 0x55;
    sector[511] = 0xaa;
    expect(isClassicMbr(sector)).toBe(false); // signature but no entries
    sector[446 + 4] = 0xee;
    expect(isClassicMbr(sector)).toBe(false); // protective
    sector[446 + 4] = 0x83;
    sector.writeUInt32LE(2048, 446 + 8);
    sector.writeUInt32LE(100, 446 + 12);
    expect(readMbrPartitions(sector)).toEqual([{ number: 1, type: 0x83, bootable: false, startLba: 2048, sectors: 100 }]);
    sector[446] = 0x3c; // a FAT boot sector's jump bytes land here, not a status byte
    expect(isClassicMbr(sector)).toBe(false);
  });
});
