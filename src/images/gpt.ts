// GPT editing for the config drive (UEFI 2.10 §5.3): after an image is written, its backup
// GPT sits where the image ended, not at the end of the disk. appendGptPartition moves the
// backup header and array to the disk's last sectors (as `sgdisk -e` does), widens the last
// usable LBA, adds one partition ending at the last usable LBA, and rewrites both headers
// with fresh CRC32s and the protective MBR's size. Works through read/write callbacks so it
// serves block devices and image files alike. 512-byte logical sectors only.
import { randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';

const SECTOR = 512;
const MAX_ENTRIES = 1024;

export interface SectorIo {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  write(buf: Buffer, offset: number): Promise<void>;
}

export interface GptPartition {
  number: number;
  firstLba: number;
  lastLba: number;
  typeGuid: string;
  name: string;
}

/** A GUID in its on-disk (mixed-endian) form. */
export function guidToBytes(guid: string): Buffer {
  const b = Buffer.from(guid.replace(/-/g, ''), 'hex');
  if (b.length !== 16) throw new RangeError(`"${guid}" is not a GUID`);
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8, 16)]);
}

export function guidFromBytes(b: Buffer): string {
  const hex = Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8, 16)]).toString('hex').toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const LINUX_FILESYSTEM_GUID = '0FC63DAF-8483-4772-8E79-3D69E47DE47D';

export class GptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GptError';
  }
}

interface ReadGpt {
  header: Buffer;
  entries: Buffer;
  entryCount: number;
  entrySize: number;
  partitions: GptPartition[];
}

async function readPrimary(io: SectorIo): Promise<ReadGpt> {
  const header = Buffer.from(await io.read(SECTOR, SECTOR));
  if (header.toString('latin1', 0, 8) !== 'EFI PART') throw new GptError('the disk has no GPT (the image must be a whole-disk image with a GPT partition table to add a config drive)');
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR) throw new GptError('the GPT header size is invalid');
  const crc = header.readUInt32LE(16);
  const check = Buffer.from(header.subarray(0, headerSize));
  check.writeUInt32LE(0, 16);
  if (crc32(check) !== crc) throw new GptError('the primary GPT header CRC is wrong; the image is damaged');
  const entriesLba = Number(header.readBigUInt64LE(72));
  const entryCount = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  if (entryCount > MAX_ENTRIES || entrySize < 128 || entrySize > 4096 || entrySize % 8 !== 0) throw new GptError('the GPT partition array has an implausible size');
  const entries = Buffer.from(await io.read(entriesLba * SECTOR, entryCount * entrySize));
  if (crc32(entries) !== header.readUInt32LE(88)) throw new GptError('the GPT partition array CRC is wrong; the image is damaged');
  const partitions: GptPartition[] = [];
  for (let i = 0; i < entryCount; i++) {
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    partitions.push({
      number: i + 1,
      typeGuid: guidFromBytes(e.subarray(0, 16)),
      firstLba: Number(e.readBigUInt64LE(32)),
      lastLba: Number(e.readBigUInt64LE(40)),
      name: e.toString('utf16le', 56, 128).replace(/\0.*$/, ''),
    });
  }
  return { header, entries, entryCount, entrySize, partitions };
}

export async function readGptPartitions(io: SectorIo): Promise<GptPartition[]> {
  return (await readPrimary(io)).partitions;
}

/**
 * Adds a partition of at least `sizeBytes` (rounded up to 1 MiB, 1 MiB-aligned) at the end of
 * the disk and returns it. Throws GptError when the table is damaged, full, or the space after
 * the last partition is too small.
 */
export async function appendGptPartition(io: SectorIo, opts: { sizeBytes: number; name: string; typeGuid?: string }): Promise<GptPartition> {
  if (io.size % SECTOR !== 0) throw new GptError('the disk size is not a multiple of 512 bytes');
  const gpt = await readPrimary(io);
  const lastLba = io.size / SECTOR - 1;
  const arraySectors = Math.ceil((gpt.entryCount * gpt.entrySize) / SECTOR);
  const backupArrayLba = lastLba - arraySectors;
  const lastUsable = backupArrayLba - 1;
  const align = (1024 * 1024) / SECTOR;
  const sectors = Math.ceil(Math.max(opts.sizeBytes, 1) / (1024 * 1024)) * align;
  const firstLba = Math.floor((lastUsable + 1 - sectors) / align) * align;
  const usedUntil = Math.max(Number(gpt.header.readBigUInt64LE(40)) - 1, ...gpt.partitions.map((p) => p.lastLba));
  if (firstLba <= usedUntil) throw new GptError(`there is no room for a ${sectors * SECTOR}-byte partition after the last partition; choose a larger root disk`);
  const slot = Array.from({ length: gpt.entryCount }, (_, i) => i).find((i) => gpt.entries.subarray(i * gpt.entrySize, i * gpt.entrySize + 16).every((x) => x === 0));
  if (slot === undefined) throw new GptError('the GPT partition array is full');

  const oldBackupLba = Number(gpt.header.readBigUInt64LE(32));
  const entry = gpt.entries.subarray(slot * gpt.entrySize, (slot + 1) * gpt.entrySize);
  guidToBytes(opts.typeGuid ?? LINUX_FILESYSTEM_GUID).copy(entry, 0);
  guidToBytes(randomUUID()).copy(entry, 16);
  entry.writeBigUInt64LE(BigInt(firstLba), 32);
  entry.writeBigUInt64LE(BigInt(lastUsable), 40);
  entry.fill(0, 56, 128);
  Buffer.from(opts.name.slice(0, 36), 'utf16le').copy(entry, 56);
  const arrayCrc = crc32(gpt.entries);

  const headerSize = gpt.header.readUInt32LE(12);
  const makeHeader = (current: number, backup: number, arrayLba: number) => {
    const h = Buffer.from(gpt.header);
    h.writeBigUInt64LE(BigInt(current), 24);
    h.writeBigUInt64LE(BigInt(backup), 32);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    h.writeBigUInt64LE(BigInt(arrayLba), 72);
    h.writeUInt32LE(arrayCrc, 88);
    h.writeUInt32LE(0, 16);
    h.writeUInt32LE(crc32(h.subarray(0, headerSize)), 16);
    return h;
  };
  // Order: backup first, then primary, so an interruption leaves at least one valid header.
  await io.write(gpt.entries, backupArrayLba * SECTOR);
  await io.write(makeHeader(lastLba, 1, backupArrayLba), lastLba * SECTOR);
  const primaryArrayLba = Number(gpt.header.readBigUInt64LE(72));
  await io.write(gpt.entries, primaryArrayLba * SECTOR);
  await io.write(makeHeader(1, lastLba, primaryArrayLba), SECTOR);
  // The image's old backup header would confuse tools that scan for one: erase it.
  if (oldBackupLba > 1 && oldBackupLba < lastLba && (oldBackupLba < firstLba || oldBackupLba > lastUsable)) await io.write(Buffer.alloc(SECTOR), oldBackupLba * SECTOR);
  // Protective MBR (UEFI §5.2.3): its single 0xEE entry covers the whole disk.
  const mbr = Buffer.from(await io.read(0, SECTOR));
  if (mbr[450] === 0xee) {
    mbr.writeUInt32LE(Math.min(lastLba, 0xffffffff), 446 + 12);
    await io.write(mbr, 0);
  }
  return { number: slot + 1, firstLba, lastLba: lastUsable, typeGuid: opts.typeGuid ?? LINUX_FILESYSTEM_GUID, name: opts.name };
}
