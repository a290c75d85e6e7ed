// Signatures of what a tenant can leave on a disk region (a whole disk, a partition, the data
// area of an LVM physical volume or md member) and that ordinary tools would find again:
// filesystems, swap, LVM2, Linux md RAID, LUKS. Offsets follow the on-disk formats as
// util-linux's libblkid probes them (superblocks/ext.c, xfs.c, btrfs.c, vfat.c, ntfs.c,
// swap.c, lvm.c, linux_raid.c, luks.c, iso9660.c), so that what this module no longer finds,
// `blkid -p` does not find either. Partition tables are read by the format inspector
// (readPartitionLayout); this module covers what sits inside partitions.
//
// Each signature names the byte ranges that carry it (erasing them hides it from blkid and
// makes the filesystem unmountable) and, for containers, where their contents start, so
// cleaning can look for what is nested inside. Like the inspector it never reads outside
// [0, reader.size) and never throws for what it reads.
import { readAt, u64be, u64le, type ByteReader } from './byte-reader.js';

export const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]); // "LUKS\xba\xbe"
const LUKS2_SECONDARY_MAGIC = Buffer.from([0x53, 0x4b, 0x55, 0x4c, 0xba, 0xbe]); // "SKUL\xba\xbe"
/** LUKS2 places its secondary header at one of these offsets (the primary area's size). */
const LUKS2_SECONDARY_OFFSETS = [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000];
const MD_MAGIC = 0xa92b4efc;
const EXT_MAGIC = 0xef53;
/** A LUKS header plus key slots larger than this is not believed; erasing stops here. */
const MAX_LUKS_HEADER_BYTES = 64 * 1024 * 1024;
const MAX_LUKS2_JSON_BYTES = 4 * 1024 * 1024;

export interface ByteRange {
  offset: number;
  length: number;
}

export interface DiskSignature {
  /** What blkid would call it (TYPE=): ext4 and its ancestors share one superblock, so "ext". */
  type: 'ext' | 'xfs' | 'btrfs' | 'vfat' | 'ntfs' | 'swap' | 'LVM2_member' | 'linux_raid_member' | 'crypto_LUKS' | 'iso9660';
  /** Byte ranges (relative to the region) holding the signature and its key metadata. */
  ranges: ByteRange[];
  /** Regions (relative) holding the container's contents, which may carry signatures too. */
  contents?: Array<{ offset: number; size: number }>;
}

function has(buf: Buffer, magic: string | Buffer, at: number): boolean {
  const m = typeof magic === 'string' ? Buffer.from(magic, 'latin1') : magic;
  return buf.length >= at + m.length && buf.subarray(at, at + m.length).equals(m);
}

/** Clips ranges to the region and drops empty ones. */
function within(size: number, ranges: ByteRange[]): ByteRange[] {
  return ranges
    .map((r) => ({ offset: Math.max(0, r.offset), length: Math.min(r.length, size - Math.max(0, r.offset)) }))
    .filter((r) => r.length > 0);
}

/** Every signature found in the region `reader` covers, in a fixed order. */
export async function findSignatures(reader: ByteReader): Promise<DiskSignature[]> {
  const size = reader.size;
  const head = await readAt(reader, 0, 72 * 1024);
  const found: DiskSignature[] = [];
  const add = (type: DiskSignature['type'], ranges: ByteRange[], contents?: DiskSignature['contents']) => {
    const clipped = within(size, ranges);
    const inside = contents?.filter((c) => c.offset > 0 && c.offset < size && c.size > 0).map((c) => ({ offset: c.offset, size: Math.min(c.size, size - c.offset) }));
    found.push({ type, ranges: clipped, ...(inside && inside.length > 0 ? { contents: inside } : {}) });
  };

  // The backup superblocks go too: `e2fsck -b`, `xfs_repair` and `btrfs rescue` rebuild a
  // filesystem from them, and an ordinary tool is all a next tenant needs.
  if (head.length >= 1082 && head.readUInt16LE(1080) === EXT_MAGIC) add('ext', extSuperblocks(head, size));
  if (has(head, 'XFSB', 0)) add('xfs', xfsSuperblocks(head));
  if (has(head, '_BHRfS_M', 0x10040)) add('btrfs', [0x10000, 0x4000000, 0x4000000000].map((offset) => ({ offset, length: 4096 })));
  if (has(head, 'NTFS    ', 3)) add('ntfs', [{ offset: 0, length: 512 }, { offset: size - 512, length: 512 }]);
  // vfat: libblkid also accepts a bare boot sector with a sane BPB, so the whole boot sector
  // goes, with FAT32's backup copy at sector 6 that fsck.vfat would restore from.
  if (has(head, 'FAT32   ', 0x52) || has(head, 'MSWIN', 0x52) || has(head, 'FAT12   ', 0x36) || has(head, 'FAT16   ', 0x36) || has(head, 'FAT     ', 0x36) || has(head, 'MSDOS', 0x36)) {
    add('vfat', [{ offset: 0, length: 512 }, { offset: 6 * 512, length: 512 }]);
  }
  for (const page of [4096, 8192, 16384, 65536]) {
    if (has(head, 'SWAPSPACE2', page - 10) || has(head, 'SWAP-SPACE', page - 10)) {
      add('swap', [{ offset: 0, length: page }]);
      break;
    }
  }
  if (has(head, 'CD001', 0x8001) || has(head, 'CD001', 0x8801) || has(head, 'CD001', 0x9001)) add('iso9660', [{ offset: 0x8000, length: 0x1800 }]);

  const lvm = lvmPhysicalVolume(head, size);
  if (lvm) add('LVM2_member', lvm.ranges, lvm.contents);
  for (const md of await mdSuperblocks(reader, head, size)) add('linux_raid_member', md.ranges, md.contents);
  const luks = await luksHeader(reader, head);
  if (luks) add('crypto_LUKS', luks);
  return found;
}

const MAX_BACKUP_SUPERBLOCKS = 256;

/**
 * ext2/3/4 (e2fsprogs lib/ext2fs/ext2_fs.h): the superblock at 1024 and its backups at the
 * start of block groups 1 and powers of 3, 5 and 7 (sparse_super), of every group without
 * it, or of the two groups sparse_super2 names.
 */
function extSuperblocks(head: Buffer, size: number): ByteRange[] {
  const sb = 1024;
  const ranges: ByteRange[] = [{ offset: sb, length: 1024 }];
  const logBlock = head.readUInt32LE(sb + 24);
  const perGroup = head.readUInt32LE(sb + 32);
  const firstData = head.readUInt32LE(sb + 20);
  if (logBlock > 6 || perGroup === 0) return ranges;
  const blockSize = 1024 << logBlock;
  const groups = Math.ceil(size / blockSize / perGroup);
  const sparse = (head.readUInt32LE(sb + 100) & 0x1) !== 0;
  const sparse2 = (head.readUInt32LE(sb + 92) & 0x200) !== 0;
  const backups = new Set<number>();
  if (sparse2) {
    backups.add(head.readUInt32LE(sb + 0x24c));
    backups.add(head.readUInt32LE(sb + 0x250));
  } else if (sparse) {
    backups.add(1);
    for (const base of [3, 5, 7]) for (let g = base; g < groups; g *= base) backups.add(g);
  } else {
    for (let g = 1; g < groups && g <= MAX_BACKUP_SUPERBLOCKS; g++) backups.add(g);
  }
  for (const g of [...backups].filter((g) => g > 0 && g < groups).slice(0, MAX_BACKUP_SUPERBLOCKS)) {
    // With 1 KiB blocks, group g starts at block g * perGroup + 1 (block 0 is the boot block).
    ranges.push({ offset: (g * perGroup + firstData) * blockSize, length: 1024 });
  }
  return ranges;
}

/** XFS (xfs_format.h): every allocation group starts with a copy of the superblock. */
function xfsSuperblocks(head: Buffer): ByteRange[] {
  const blockSize = head.readUInt32BE(4);
  const agBlocks = head.readUInt32BE(84);
  const agCount = Math.min(head.readUInt32BE(88), MAX_BACKUP_SUPERBLOCKS);
  const ranges: ByteRange[] = [{ offset: 0, length: 512 }];
  if (blockSize < 512 || blockSize > 65536 || agBlocks === 0) return ranges;
  for (let ag = 1; ag < agCount; ag++) ranges.push({ offset: ag * agBlocks * blockSize, length: 512 });
  return ranges;
}

/**
 * LVM2 label (lib/label/label.c): "LABELONE" at the start of one of the first four sectors,
 * "LVM2 001" at +24, the PV header at +offset_xl: its UUID, size, then lists of data areas
 * and metadata areas ({offset, size} pairs ending with a zero pair). The first data area's
 * offset is pe_start, where logical volumes begin.
 */
function lvmPhysicalVolume(head: Buffer, size: number): { ranges: ByteRange[]; contents: DiskSignature['contents'] } | undefined {
  for (let sector = 0; sector < 4; sector++) {
    const at = sector * 512;
    if (!has(head, 'LABELONE', at) || !has(head, 'LVM2 001', at + 24)) continue;
    const ranges: ByteRange[] = [{ offset: at, length: 512 }];
    const contents: NonNullable<DiskSignature['contents']> = [];
    const pvHeader = at + head.readUInt32LE(at + 20);
    let cursor = pvHeader + 32 + 8;
    const readList = (): Array<{ offset: number; size: number }> => {
      const list: Array<{ offset: number; size: number }> = [];
      for (let i = 0; i < 16 && cursor + 16 <= at + 512; i++, cursor += 16) {
        const offset = u64le(head, cursor);
        const len = u64le(head, cursor + 8);
        if (!offset) {
          cursor += 16;
          break;
        }
        list.push({ offset, size: len ?? 0 });
      }
      return list;
    };
    const data = readList();
    const metadata = readList();
    for (const area of data) contents.push({ offset: area.offset, size: area.size || size - area.offset });
    // The metadata areas hold the VG's text description (LV names, layout): erased too.
    for (const area of metadata) ranges.push({ offset: area.offset, length: Math.min(area.size || 1024 * 1024, 4 * 1024 * 1024) });
    return { ranges, contents };
  }
  return undefined;
}

/**
 * Linux md superblocks (drivers/md/md-p.h, md_p.h): 0.90 and 1.0 near the end of the member,
 * 1.1 at its start, 1.2 at 4 KiB. Version 1 records where the array's data starts.
 */
async function mdSuperblocks(reader: ByteReader, head: Buffer, size: number): Promise<Array<{ ranges: ByteRange[]; contents?: DiskSignature['contents'] }>> {
  const out: Array<{ ranges: ByteRange[]; contents?: DiskSignature['contents'] }> = [];
  const v1 = (sb: Buffer, at: number) => {
    if (sb.length < 144 || sb.readUInt32LE(0) !== MD_MAGIC || sb.readUInt32LE(4) !== 1) return;
    const dataOffset = u64le(sb, 128);
    const dataSize = u64le(sb, 136);
    out.push({
      ranges: [{ offset: at, length: 4096 }],
      ...(dataOffset !== undefined && dataSize !== undefined && dataOffset > 0 ? { contents: [{ offset: dataOffset * 512, size: dataSize * 512 }] } : {}),
    });
  };
  v1(head.subarray(0, 4096), 0);
  v1(head.subarray(4096, 8192), 4096);
  if (size >= 8 * 4096) {
    const at = (((Math.floor(size / 512) - 16) & ~7) >>> 0) * 512;
    v1(await readAt(reader, at, 4096), at);
  }
  if (size >= 2 * 65536) {
    const at = Math.floor(size / 65536) * 65536 - 65536;
    const sb = await readAt(reader, at, 4096);
    if (sb.length >= 8 && sb.readUInt32LE(0) === MD_MAGIC && sb.readUInt32LE(4) === 0) out.push({ ranges: [{ offset: at, length: 4096 }] });
  }
  return out;
}

/**
 * LUKS1 (header then key slots up to the payload offset) and LUKS2 (binary header, JSON
 * metadata, a secondary copy, then key slots up to the first segment's offset). The whole
 * area up to the encrypted data goes: without the key slots the data is unrecoverable.
 */
async function luksHeader(reader: ByteReader, head: Buffer): Promise<ByteRange[] | undefined> {
  let secondary: number | undefined;
  for (const at of LUKS2_SECONDARY_OFFSETS) {
    if (has(at < head.length ? head : await readAt(reader, at, 8), LUKS2_SECONDARY_MAGIC, at < head.length ? at : 0)) {
      secondary = at;
      break;
    }
  }
  if (!has(head, LUKS_MAGIC, 0)) return secondary !== undefined ? [{ offset: 0, length: secondary + 4096 }] : undefined;
  const version = head.readUInt16BE(6);
  let end = 2 * 1024 * 1024;
  if (version === 1 && head.length >= 108) {
    end = head.readUInt32BE(104) * 512;
  } else if (version === 2) {
    const headerSize = u64be(head, 8) ?? 0x4000;
    const json = (await readAt(reader, 4096, Math.min(Math.max(headerSize - 4096, 0), MAX_LUKS2_JSON_BYTES))).toString('latin1').replace(/\0.*$/s, '');
    const segment = /"segments"\s*:\s*\{\s*"\d+"\s*:\s*\{[^}]*?"offset"\s*:\s*"(\d+)"/.exec(json);
    end = segment ? Number(segment[1]) : Math.max(2 * headerSize, 16 * 1024 * 1024);
  }
  if (!Number.isSafeInteger(end) || end <= 0) end = 2 * 1024 * 1024;
  return [{ offset: 0, length: Math.min(end, MAX_LUKS_HEADER_BYTES) }, ...(secondary !== undefined ? [{ offset: secondary, length: 4096 }] : [])];
}
