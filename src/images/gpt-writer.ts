// A minimal GPT writer (UEFI 2.10 §5.3): protective MBR, primary header at LBA 1 with its
// 128-entry array at LBA 2, backup array and header at the end of the disk, CRC32s over both.
// Enough to build real partitioned whole-disk images without sgdisk: `ingot quickstart` builds
// its demo image with it, tests build their fixtures with it (test/support/gpt.ts).
import { randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const LINUX_FILESYSTEM_GUID = '0FC63DAF-8483-4772-8E79-3D69E47DE47D';
export const EFI_SYSTEM_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

export interface GptPartitionSpec {
  firstLba: number;
  lastLba: number;
  typeGuid?: string;
  name?: string;
}

const SECTOR = 512;
const ENTRIES = 128;
const ENTRY_SIZE = 128;
const ARRAY_SECTORS = (ENTRIES * ENTRY_SIZE) / SECTOR; // 32

/** A GUID in its on-disk (mixed-endian) form, as GPT and VHDX store it. */
export function guidBytes(guid: string): Buffer {
  const hex = guid.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  // The first three fields are stored little-endian.
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8, 16)]);
}

/** First LBA a partition may use on a disk written by `writeGpt`. */
export const FIRST_USABLE_LBA = 2 + ARRAY_SECTORS;

/** Writes a GPT onto `disk` (whose length must be a multiple of 512) in place. */
export function writeGpt(disk: Buffer, partitions: GptPartitionSpec[], opts: { corruptPrimaryCrc?: boolean } = {}): Buffer {
  const { head, tail } = gptStructures(disk.length, partitions, opts);
  head.copy(disk, 0);
  tail.copy(disk, disk.length - tail.length);
  return disk;
}

/**
 * The GPT of a disk of `sizeBytes` as two pieces: `head` (protective MBR, primary header and
 * array: the first FIRST_USABLE_LBA sectors) and `tail` (backup array and header: the last 33
 * sectors), so that images too big to hold in memory can be written piece by piece.
 */
export function gptStructures(sizeBytes: number, partitions: GptPartitionSpec[], opts: { corruptPrimaryCrc?: boolean } = {}): { head: Buffer; tail: Buffer } {
  if (sizeBytes % SECTOR !== 0) throw new Error('disk size must be a multiple of 512');
  const lastLba = sizeBytes / SECTOR - 1;
  const lastUsable = lastLba - 1 - ARRAY_SECTORS;
  const head = Buffer.alloc(FIRST_USABLE_LBA * SECTOR);
  const tail = Buffer.alloc((ARRAY_SECTORS + 1) * SECTOR);

  // Protective MBR: one 0xEE partition covering the disk (capped at 2^32-1 sectors).
  const mbr = Buffer.alloc(SECTOR);
  const e = 446;
  mbr[e + 4] = 0xee;
  mbr.writeUInt32LE(1, e + 8);
  mbr.writeUInt32LE(Math.min(lastLba, 0xffffffff), e + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  mbr.copy(head, 0);

  const array = Buffer.alloc(ENTRIES * ENTRY_SIZE);
  partitions.forEach((p, i) => {
    const entry = array.subarray(i * ENTRY_SIZE, (i + 1) * ENTRY_SIZE);
    guidBytes(p.typeGuid ?? LINUX_FILESYSTEM_GUID).copy(entry, 0);
    guidBytes(randomUUID()).copy(entry, 16);
    entry.writeBigUInt64LE(BigInt(p.firstLba), 32);
    entry.writeBigUInt64LE(BigInt(p.lastLba), 40);
    Buffer.from((p.name ?? `part${i + 1}`).slice(0, 36), 'utf16le').copy(entry, 56);
  });
  const arrayCrc = crc32(array);
  const diskGuid = guidBytes(randomUUID());

  const header = (current: number, backup: number, arrayLba: number) => {
    const h = Buffer.alloc(SECTOR);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(current), 24);
    h.writeBigUInt64LE(BigInt(backup), 32);
    h.writeBigUInt64LE(BigInt(FIRST_USABLE_LBA), 40);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    diskGuid.copy(h, 56);
    h.writeBigUInt64LE(BigInt(arrayLba), 72);
    h.writeUInt32LE(ENTRIES, 80);
    h.writeUInt32LE(ENTRY_SIZE, 84);
    h.writeUInt32LE(arrayCrc, 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  const primary = header(1, lastLba, 2);
  if (opts.corruptPrimaryCrc) primary.writeUInt32LE((primary.readUInt32LE(16) + 1) >>> 0, 16);
  primary.copy(head, SECTOR);
  array.copy(head, 2 * SECTOR);
  array.copy(tail, 0);
  header(lastLba, 1, lastLba - ARRAY_SECTORS).copy(tail, ARRAY_SECTORS * SECTOR);
  return { head, tail };
}
