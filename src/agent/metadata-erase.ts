// `metadata` cleaning of one disk (DESIGN.md "Host lifecycle", deprovisioning): what Ironic's
// erase_devices_metadata does with wipefs on every partition and then the disk, done here from
// the bytes so it behaves the same on a real disk and a lab disk file.
//
// 1. Find every region that may hold a tenant's data: the disk, each partition listed in its
//    GPT (primary and backup) or MBR (with logical partitions), a partition table inside a
//    partition, and the contents of containers (an LVM physical volume's data area, an md
//    member's array data) — with the format inspector's partition reader and the signature
//    probes in src/images/disk-signatures.ts.
// 2. Erase, innermost first and the disk's own partition tables last (an interrupted clean
//    run again still finds the partitions): in each region the first and last MiB (where
//    blkid, wipefs and mount look), every signature the probes found, including backup
//    superblocks and LUKS key slots, and the ranges holding partition tables.
// 3. Verify by reading back: every erased range reads as zeros, and neither the probes nor the
//    partition reader finds anything in any region found in step 1. Anything left is an error,
//    so the host's cleaning fails and it stays out of the pool.
import type { ByteReader } from '../images/byte-reader.js';
import { findSignatures, type ByteRange } from '../images/disk-signatures.js';
import { readPartitionLayout } from '../images/format-inspector.js';
import type { OpenDisk } from './machine.js';

const MIB = 1024 * 1024;
/** How much of each region's start and end is zeroed whatever the probes say. */
const EDGE_BYTES = MIB;
const MAX_REGIONS = 4096;
const MAX_NESTING = 4;

interface Region {
  offset: number;
  size: number;
  /** For messages: "sda", "sda partition 2", "LVM2_member contents in sda partition 2". */
  label: string;
  depth: number;
  /** Absolute ranges to zero for this region. */
  erase: ByteRange[];
}

export interface MetadataEraseResult {
  /** Regions examined and erased (the disk, its partitions, nested containers). */
  regions: number;
  /** What was found, e.g. "ext in sda partition 1". */
  found: string[];
  bytesZeroed: number;
}

export class MetadataEraseFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataEraseFailed';
  }
}

function regionReader(disk: OpenDisk, offset: number, size: number): ByteReader {
  return {
    size,
    complete: true,
    read: (at, length) => disk.read(offset + at, Math.max(0, Math.min(length, size - at))),
  };
}

async function discover(disk: OpenDisk, name: string): Promise<{ regions: Region[]; found: string[] }> {
  const regions: Region[] = [];
  const found: string[] = [];
  const seen = new Set<string>();
  const queue: Array<Omit<Region, 'erase'>> = [{ offset: 0, size: disk.size, label: name, depth: 0 }];
  const enqueue = (r: Omit<Region, 'erase'>) => {
    const start = Math.max(0, r.offset);
    const size = Math.min(r.size, disk.size - start);
    const key = `${start}+${size}`;
    if (size <= 0 || seen.has(key) || r.depth > MAX_NESTING) return;
    seen.add(key);
    queue.push({ ...r, offset: start, size });
  };
  seen.add(`0+${disk.size}`);
  while (queue.length > 0) {
    const r = queue.shift()!;
    if (regions.length >= MAX_REGIONS) throw new MetadataEraseFailed(`${name} lists more than ${MAX_REGIONS} partitions and containers; erase it in full mode`);
    const erase: ByteRange[] = [
      { offset: r.offset, length: Math.min(EDGE_BYTES, r.size) },
      { offset: r.offset + r.size - Math.min(EDGE_BYTES, r.size), length: Math.min(EDGE_BYTES, r.size) },
    ];
    const reader = regionReader(disk, r.offset, r.size);
    const layout = await readPartitionLayout(reader);
    if (layout) {
      found.push(`${layout.format} partition table on ${r.label}`);
      for (const t of layout.details.tableRanges) erase.push({ offset: r.offset + t.offset, length: t.length });
      for (const p of layout.details.partitions) {
        enqueue({ offset: r.offset + p.startOffset, size: p.sizeBytes, label: r.depth === 0 ? `${name} partition ${p.number}` : `${r.label} partition ${p.number}`, depth: r.depth + 1 });
      }
    }
    for (const s of await findSignatures(reader)) {
      found.push(`${s.type} on ${r.label}`);
      for (const range of s.ranges) erase.push({ offset: r.offset + range.offset, length: range.length });
      for (const c of s.contents ?? []) enqueue({ offset: r.offset + c.offset, size: c.size, label: `${s.type} contents in ${r.label}`, depth: r.depth + 1 });
    }
    regions.push({ ...r, erase: erase.filter((e) => e.length > 0 && e.offset >= 0 && e.offset + e.length <= disk.size) });
  }
  return { regions, found };
}

async function zero(disk: OpenDisk, range: ByteRange, zeros: Buffer): Promise<void> {
  for (let at = range.offset; at < range.offset + range.length; ) {
    const n = Math.min(zeros.length, range.offset + range.length - at);
    await disk.write(zeros.subarray(0, n), at);
    at += n;
  }
}

async function readsZero(disk: OpenDisk, range: ByteRange): Promise<boolean> {
  for (let at = range.offset; at < range.offset + range.length; ) {
    const n = Math.min(4 * MIB, range.offset + range.length - at);
    const buf = await disk.read(at, n);
    if (buf.length < n || buf.some((b) => b !== 0)) return false;
    at += n;
  }
  return true;
}

/**
 * Erases the metadata of every partition and container on `disk`, then its partition tables,
 * and verifies by reading back. Throws MetadataEraseFailed when verification finds anything.
 * Safe to repeat.
 */
export async function eraseDiskMetadata(disk: OpenDisk, name: string, opts: { onStep?(message: string): void; signal?: AbortSignal } = {}): Promise<MetadataEraseResult> {
  const { regions, found } = await discover(disk, name);
  const partitions = regions.filter((r) => r.depth > 0).length;
  opts.onStep?.(partitions > 0 ? `erasing the metadata of ${partitions} partition${partitions === 1 ? '' : 's'} and containers on ${name}` : `erasing the metadata of ${name}`);
  const zeros = Buffer.alloc(4 * MIB);
  let bytesZeroed = 0;
  // Innermost first; the disk (depth 0) and its tables last.
  const order = [...regions].sort((a, b) => b.depth - a.depth);
  for (const r of order) {
    for (const range of r.erase) {
      opts.signal?.throwIfAborted();
      await zero(disk, range, zeros);
      bytesZeroed += range.length;
    }
  }
  await disk.sync();

  opts.onStep?.(`verifying the erase of ${name}`);
  const left: string[] = [];
  const notZero: string[] = [];
  for (const r of regions) {
    for (const range of r.erase) {
      if (!(await readsZero(disk, range))) notZero.push(`bytes ${range.offset}-${range.offset + range.length - 1} of ${name} do not read back as zeros`);
    }
    const reader = regionReader(disk, r.offset, r.size);
    const layout = await readPartitionLayout(reader);
    if (layout) left.push(`a ${layout.format} partition table is still readable on ${r.label}`);
    for (const s of await findSignatures(reader)) left.push(`a ${s.type} signature is still readable on ${r.label}`);
  }
  left.push(...notZero);
  if (left.length > 0) throw new MetadataEraseFailed(`cleaning ${name} did not verify: ${left.slice(0, 5).join('; ')}${left.length > 5 ? ` (and ${left.length - 5} more)` : ''}`);
  return { regions: regions.length, found, bytesZeroed };
}
