// Classic MBR (DOS) partition tables, for the config drive on whole-disk images that are not
// GPT: a new primary partition at the end of the disk, as Ironic's agent does
// (ironic_lib disk_utils.create_config_drive_partition: `parted mkpart primary` at the end,
// within the first 2 TiB on larger disks since MBR addresses are 32-bit sector numbers).
// Layout: four 16-byte entries at offset 446, signature 0x55 0xAA at 510; each entry has a
// status byte, a CHS start, the type, a CHS end, then the start LBA and sector count (32-bit
// little endian). CHS fields are set to the "beyond CHS" value FE FF FF, as fdisk and parted
// do for partitions past cylinder 1023; every current firmware and kernel uses the LBA fields.
// 512-byte logical sectors only.
import type { SectorIo } from './gpt.js';

const SECTOR = 512;
const ENTRY_TABLE = 446;
const ENTRY_SIZE = 16;
/** The largest sector number plus one an MBR entry can address (2 TiB with 512-byte sectors). */
const MBR_SECTOR_LIMIT = 2 ** 32;
const MIB_SECTORS = (1024 * 1024) / SECTOR;
/** The entry type of a GPT's protective MBR (UEFI §5.2.3). */
const PROTECTIVE = 0xee;
export const MBR_LINUX_TYPE = 0x83;

export interface MbrPartition {
  /** 1-4 (primary slots). */
  number: number;
  type: number;
  bootable: boolean;
  startLba: number;
  sectors: number;
}

export class MbrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MbrError';
  }
}

/** Whether sector 0 is an MBR partition table that is not a GPT's protective MBR. */
export function isClassicMbr(sector0: Buffer): boolean {
  if (sector0.length < SECTOR || sector0[510] !== 0x55 || sector0[511] !== 0xaa) return false;
  const entries = [0, 1, 2, 3].map((i) => sector0.subarray(ENTRY_TABLE + i * ENTRY_SIZE, ENTRY_TABLE + (i + 1) * ENTRY_SIZE));
  if (entries.some((e) => e[4] === PROTECTIVE)) return false;
  // Status bytes other than 0x00/0x80 mean this is a boot sector (e.g. a FAT volume), not a table.
  return entries.every((e) => e[0] === 0x00 || e[0] === 0x80) && entries.some((e) => e[4] !== 0);
}

export function readMbrPartitions(sector0: Buffer): MbrPartition[] {
  if (!isClassicMbr(sector0)) throw new MbrError('the disk has no MBR partition table');
  const found: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const e = sector0.subarray(ENTRY_TABLE + i * ENTRY_SIZE, ENTRY_TABLE + (i + 1) * ENTRY_SIZE);
    if (e[4] === 0) continue;
    found.push({ number: i + 1, type: e[4]!, bootable: e[0] === 0x80, startLba: e.readUInt32LE(8), sectors: e.readUInt32LE(12) });
  }
  return found;
}

/**
 * Adds a primary partition of at least `sizeBytes` (rounded up to 1 MiB, 1 MiB-aligned) at
 * the end of the disk, or of its first 2 TiB, and returns it. Throws MbrError when the four
 * primary slots are taken or there is no room after the last partition.
 */
export async function appendMbrPartition(io: SectorIo, opts: { sizeBytes: number; type?: number }): Promise<MbrPartition> {
  if (io.size % SECTOR !== 0) throw new MbrError('the disk size is not a multiple of 512 bytes');
  const sector0 = Buffer.from(await io.read(0, SECTOR));
  const partitions = readMbrPartitions(sector0);
  const slot = [1, 2, 3, 4].find((n) => !partitions.some((p) => p.number === n));
  if (slot === undefined) throw new MbrError('all four primary MBR partitions are in use, so there is no slot for the config drive; build the image with at most three primary partitions (or use GPT)');
  const endSector = Math.min(io.size / SECTOR, MBR_SECTOR_LIMIT);
  const sectors = Math.ceil(Math.max(opts.sizeBytes, 1) / (MIB_SECTORS * SECTOR)) * MIB_SECTORS;
  const startLba = Math.floor((endSector - sectors) / MIB_SECTORS) * MIB_SECTORS;
  // An extended partition's extent covers its logical partitions, so the primaries' ends bound everything.
  const usedUntil = Math.max(0, ...partitions.map((p) => p.startLba + p.sectors));
  if (startLba < usedUntil || startLba <= 0) {
    const where = endSector < io.size / SECTOR ? 'in the first 2 TiB of the disk (the most an MBR addresses)' : 'after the last partition';
    throw new MbrError(`there is no room for a ${sectors * SECTOR}-byte config drive partition ${where}; ${endSector < io.size / SECTOR ? 'use a GPT image on disks over 2 TiB' : 'choose a larger root disk'}`);
  }
  const size = Math.min(sectors, endSector - startLba);
  const e = ENTRY_TABLE + (slot - 1) * ENTRY_SIZE;
  sector0[e] = 0x00;
  sector0.set([0xfe, 0xff, 0xff], e + 1);
  sector0[e + 4] = opts.type ?? MBR_LINUX_TYPE;
  sector0.set([0xfe, 0xff, 0xff], e + 5);
  sector0.writeUInt32LE(startLba, e + 8);
  sector0.writeUInt32LE(size, e + 12);
  await io.write(sector0, 0);
  return { number: slot, type: opts.type ?? MBR_LINUX_TYPE, bootable: false, startLba, sectors: size };
}
