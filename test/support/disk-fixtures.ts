// Disk files holding what a tenant leaves behind, built with Debian's tools: sgdisk/sfdisk
// for the tables, mkfs.ext4, mkfs.vfat, mkswap and cryptsetup for the contents (each run on a
// file of the partition's size, then copied in at the partition's offset). pvcreate and
// mdadm --create need block devices and the kernel's md driver, so the LVM2 label and the md
// superblock are written here to their on-disk formats; tests prove them with `blkid -p`
// before cleaning, so blkid, not this file, says they are real.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const MIB = 1024 * 1024;

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined ? { input } : {}) });
}

/** `blkid -p -O offset file`: the TYPE found there, or undefined (blkid exits 2 when nothing is). */
export function blkidTypeAt(file: string, offset: number): string | undefined {
  try {
    const out = run('blkid', ['-p', '-O', String(offset), '-o', 'export', file]);
    return /^(?:TYPE|PTTYPE)=(.*)$/m.exec(out)?.[1] ?? 'unknown';
  } catch (err) {
    if ((err as { status?: number }).status === 2) return undefined;
    throw err;
  }
}

function copyInto(disk: string, offset: number, part: string): void {
  const fd = openSync(disk, 'r+');
  try {
    const bytes = readFileSync(part);
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

function writeAt(disk: string, offset: number, bytes: Buffer): void {
  const fd = openSync(disk, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Runs `make(file)` on a scratch file of `size` bytes and copies the result into `disk` at `offset`. */
export function buildInto(dir: string, disk: string, offset: number, size: number, make: (file: string) => void): void {
  const part = join(dir, `part-${offset}.img`);
  writeFileSync(part, '');
  truncateSync(part, size);
  make(part);
  copyInto(disk, offset, part);
  rmSync(part);
}

export const makeExt4 = (label: string) => (file: string) => run('mkfs.ext4', ['-q', '-F', '-L', label, file]);
export const makeVfat = (label: string) => (file: string) => run('mkfs.vfat', ['-n', label, file]);
export const makeSwap = (file: string) => run('mkswap', [file]);
/** LUKS with a throwaway passphrase and the cheapest KDF (the test needs the header, not security). */
export const makeLuks = (type: 'luks1' | 'luks2') => (file: string) =>
  run('cryptsetup', ['luksFormat', '--batch-mode', '--type', type, '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--key-file', '-', file], 'tenant secret');

/** LVM's CRC32 (lib/misc/crc.c): the reflected IEEE polynomial, seeded 0xf597a6cf, no final xor. */
function lvmCrc(buf: Buffer): number {
  let crc = 0xf597a6cf;
  for (const byte of buf) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return crc >>> 0;
}

/**
 * An LVM2 physical volume label as pvcreate writes it (label in sector 1, PV header, one data
 * area from `peStart`, one metadata area at 4 KiB), over the region at `offset` of `disk`.
 */
export function writeLvmLabel(disk: string, offset: number, size: number, peStart = MIB): void {
  const sector = Buffer.alloc(512);
  sector.write('LABELONE', 0, 'latin1');
  sector.writeBigUInt64LE(1n, 8);
  sector.writeUInt32LE(32, 20);
  sector.write('LVM2 001', 24, 'latin1');
  sector.write(randomBytes(16).toString('hex'), 32, 'latin1'); // PV UUID: 32 characters
  sector.writeBigUInt64LE(BigInt(size), 64);
  sector.writeBigUInt64LE(BigInt(peStart), 72); // data area: offset, size 0 = to the end
  sector.writeBigUInt64LE(0n, 80);
  sector.writeBigUInt64LE(0n, 88); // end of data areas
  sector.writeBigUInt64LE(0n, 96);
  sector.writeBigUInt64LE(4096n, 104); // metadata area
  sector.writeBigUInt64LE(BigInt(peStart - 4096), 112);
  sector.writeUInt32LE(lvmCrc(sector.subarray(20)), 16);
  writeAt(disk, offset + 512, sector);
  writeAt(disk, offset + 4096, Buffer.from(' LVM2 x[5A%r0N*> vg0 { extent_size = 8192 }', 'latin1'));
}

/** An md superblock, version 1.2 (4 KiB into the member), as mdadm writes it, checksum included. */
export function writeMdSuperblock(disk: string, offset: number, size: number, dataOffsetBytes = MIB): void {
  const maxDev = 2;
  const sb = Buffer.alloc(256 + maxDev * 2);
  sb.writeUInt32LE(0xa92b4efc, 0);
  sb.writeUInt32LE(1, 4);
  randomBytes(16).copy(sb, 16);
  sb.write('tenant:0', 32, 'latin1');
  sb.writeBigUInt64LE(BigInt(Math.floor(Date.now() / 1000)), 64);
  sb.writeUInt32LE(1, 72); // raid1
  const dataSectors = Math.floor((size - dataOffsetBytes) / 512);
  sb.writeBigUInt64LE(BigInt(dataSectors), 80);
  sb.writeUInt32LE(2, 92); // raid_disks
  sb.writeBigUInt64LE(BigInt(dataOffsetBytes / 512), 128);
  sb.writeBigUInt64LE(BigInt(dataSectors), 136);
  sb.writeBigUInt64LE(8n, 144); // super_offset: sector 8
  randomBytes(16).copy(sb, 168);
  sb.writeBigUInt64LE(1n, 200); // events
  sb.writeBigUInt64LE(0xffffffffffffffffn, 208); // resync_offset: in sync
  sb.writeUInt32LE(maxDev, 220);
  sb.writeUInt16LE(0, 256);
  sb.writeUInt16LE(0xffff, 258);
  // mdadm calc_sb_1_csum: 32-bit little-endian words summed into 64 bits, folded once.
  let sum = 0n;
  for (let i = 0; i + 4 <= sb.length; i += 4) sum += BigInt(sb.readUInt32LE(i));
  sb.writeUInt32LE(Number(((sum & 0xffffffffn) + (sum >> 32n)) & 0xffffffffn), 216);
  writeAt(disk, offset + 4096, sb);
}

export function newDiskFile(path: string, size: number): void {
  writeFileSync(path, '');
  truncateSync(path, size);
}
