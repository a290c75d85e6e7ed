// Metadata cleaning judged by Debian's tools: disks built with sgdisk/sfdisk, mkfs.ext4,
// mkfs.vfat, mkswap and cryptsetup (plus an LVM2 label and an md superblock that blkid
// recognises), cleaned, then `blkid -p -O <offset>` at every partition and nested container,
// sfdisk/sgdisk and dumpe2fs (on the ext4 backup superblocks) must find nothing.
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blkidTypeAt, buildInto, makeExt4, makeLuks, makeSwap, makeVfat, MIB, newDiskFile, run, writeLvmLabel, writeMdSuperblock } from '../../test/support/disk-fixtures.js';
import { openFileDisk } from './file-disk.js';
import { eraseDiskMetadata, MetadataEraseFailed } from './metadata-erase.js';
import type { OpenDisk } from './machine.js';

const dir = mkdtempSync(join(tmpdir(), 'ingot-metadata-erase-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function clean(file: string, size: number) {
  const disk = await openFileDisk(file, size);
  try {
    return await eraseDiskMetadata(disk, 'sda');
  } finally {
    await disk.close();
  }
}

/** Backup superblock block numbers and the block size, as dumpe2fs reports them. */
function extBackups(file: string, offset: number, size: number): { blocks: number[]; blockSize: number } {
  const part = join(dir, 'ext-part.img');
  writeFileSync(part, readFileSync(file).subarray(offset, offset + size));
  try {
    const out = run('dumpe2fs', [part], undefined);
    return { blocks: [...out.matchAll(/Backup superblock at (\d+)/g)].map((m) => Number(m[1])), blockSize: Number(/Block size:\s+(\d+)/.exec(out)![1]) };
  } finally {
    rmSync(part);
  }
}

function extBackupReadable(file: string, offset: number, size: number, block: number, blockSize: number): boolean {
  const part = join(dir, 'ext-part.img');
  writeFileSync(part, readFileSync(file).subarray(offset, offset + size));
  try {
    run('dumpe2fs', ['-h', '-o', `superblock=${block}`, '-o', `blocksize=${blockSize}`, part]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(part);
  }
}

describe('metadata erase', () => {
  it('erases a GPT disk with ext4, vfat, LVM (ext4 inside), md (ext4 inside), LUKS2 and swap partitions, then both GPTs', async () => {
    const file = join(dir, 'gpt.img');
    const size = 256 * MIB;
    newDiskFile(file, size);
    run('sgdisk', ['-n1:1M:+20M', '-n2:0:+20M', '-n3:0:+40M', '-n4:0:+40M', '-n5:0:+40M', '-n6:0:+16M', file]);
    const starts = [1, 21, 41, 81, 121, 161].map((m) => m * MIB);
    buildInto(dir, file, starts[0]!, 20 * MIB, makeExt4('tenant-root'));
    buildInto(dir, file, starts[1]!, 20 * MIB, makeVfat('TENANTEFI'));
    writeLvmLabel(file, starts[2]!, 40 * MIB);
    buildInto(dir, file, starts[2]! + MIB, 20 * MIB, makeExt4('in-lvm'));
    writeMdSuperblock(file, starts[3]!, 40 * MIB);
    buildInto(dir, file, starts[3]! + MIB, 20 * MIB, makeExt4('in-md'));
    buildInto(dir, file, starts[4]!, 40 * MIB, makeLuks('luks2'));
    buildInto(dir, file, starts[5]!, 16 * MIB, makeSwap);
    const nested = [starts[2]! + MIB, starts[3]! + MIB];

    // 1. Before: the real tools see every layer.
    expect(starts.map((s) => blkidTypeAt(file, s))).toEqual(['ext4', 'vfat', 'LVM2_member', 'linux_raid_member', 'crypto_LUKS', 'swap']);
    expect(nested.map((s) => blkidTypeAt(file, s))).toEqual(['ext4', 'ext4']);
    expect(blkidTypeAt(file, 0)).toBe('gpt');
    const ext = extBackups(file, starts[0]!, 20 * MIB);
    expect(ext.blocks.length).toBeGreaterThan(0);
    expect(extBackupReadable(file, starts[0]!, 20 * MIB, ext.blocks[0]!, ext.blockSize)).toBe(true);

    // 2. Clean.
    const result = await clean(file, size);
    expect(result.found).toEqual(expect.arrayContaining(['gpt partition table on sda', 'LVM2_member on sda partition 3', 'ext on LVM2_member contents in sda partition 3', 'ext on linux_raid_member contents in sda partition 4', 'crypto_LUKS on sda partition 5']));

    // 3. After: nothing at any partition's start, inside the containers, or in either table.
    expect([0, ...starts, ...nested].map((s) => blkidTypeAt(file, s))).toEqual(new Array(1 + starts.length + nested.length).fill(undefined));
    expect(() => run('sfdisk', ['--dump', file])).toThrow();
    expect(run('sgdisk', ['-p', file])).toMatch(/Creating new GPT entries/);
    for (const block of ext.blocks) expect(extBackupReadable(file, starts[0]!, 20 * MIB, block, ext.blockSize)).toBe(false);
  });

  it('erases an MBR disk with a primary ext4 and logical vfat, LUKS1 and swap partitions, and the extended boot records', async () => {
    const file = join(dir, 'mbr.img');
    const size = 128 * MIB;
    newDiskFile(file, size);
    run('sfdisk', ['--quiet', file], 'label: dos\nstart=1MiB, size=20MiB, type=83\nstart=22MiB, size=100MiB, type=5\nstart=23MiB, size=20MiB, type=c\nstart=44MiB, size=24MiB, type=83\nstart=69MiB, size=16MiB, type=82\n');
    const parts = JSON.parse(run('sfdisk', ['--json', file])).partitiontable.partitions as Array<{ node: string; start: number; size: number; type: string }>;
    const logical = parts.filter((p) => p.type !== '5').map((p) => ({ offset: p.start * 512, size: p.size * 512 }));
    expect(logical).toHaveLength(4);
    buildInto(dir, file, logical[0]!.offset, logical[0]!.size, makeExt4('tenant-root'));
    buildInto(dir, file, logical[1]!.offset, logical[1]!.size, makeVfat('TENANT'));
    buildInto(dir, file, logical[2]!.offset, logical[2]!.size, makeLuks('luks1'));
    buildInto(dir, file, logical[3]!.offset, logical[3]!.size, makeSwap);
    expect(logical.map((p) => blkidTypeAt(file, p.offset))).toEqual(['ext4', 'vfat', 'crypto_LUKS', 'swap']);
    expect(blkidTypeAt(file, 0)).toBe('dos');

    await clean(file, size);

    expect([0, ...logical.map((p) => p.offset)].map((s) => blkidTypeAt(file, s))).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(() => run('sfdisk', ['--dump', file])).toThrow();
  });

  it('fails when what it erased does not read back as erased (a disk that drops writes)', async () => {
    const file = join(dir, 'stuck.img');
    const size = 32 * MIB;
    newDiskFile(file, size);
    run('sgdisk', ['-n1:1M:+20M', file]);
    buildInto(dir, file, MIB, 20 * MIB, makeExt4('stuck'));
    const real = await openFileDisk(file, size);
    const droppingWrites: OpenDisk = { ...real, size, read: real.read, sync: real.sync, close: real.close, write: async () => {} };
    try {
      await expect(eraseDiskMetadata(droppingWrites, 'sda')).rejects.toThrow(MetadataEraseFailed);
      await expect(eraseDiskMetadata(droppingWrites, 'sda')).rejects.toThrow(/ext signature is still readable on sda partition 1/);
    } finally {
      await real.close();
    }
    expect(blkidTypeAt(file, MIB)).toBe('ext4');
  });
});
