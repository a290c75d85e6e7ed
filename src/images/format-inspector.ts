// Detects an image's format from its bytes, never from its name or a declared format, and
// lists every feature that would make qemu-img (or the host's firmware) read something other
// than the image itself. This is the defence Ironic and Glance added after
// CVE-2022-47951 / CVE-2024-32498 / CVE-2024-44082 (OSSA-2023-002, OSSA-2024-001/003):
// a file that claims to be raw but is a qcow2 with a backing file, or a VMDK whose
// descriptor names /etc/passwd as an extent, makes qemu-img disclose host files.
// Layouts follow the specs: qcow2 (qemu docs/interop/qcow2.txt), VMDK (VMware Virtual Disk
// Format 5.0), VHD (Microsoft Virtual Hard Disk Image Format Specification), VHDX
// (MS-VHDX), QED (qemu docs/interop/qed_spec.txt), ISO 9660 / ECMA-119 §8, UEFI 2.10 §5
// (GPT) and the classic MBR, LUKS1/LUKS2 on-disk format.
//
// The inspector never throws for hostile input: anything it cannot make sense of becomes
// a finding (or "raw"), and it never reads outside [0, reader.size).
import { crc32 } from 'node:zlib';
import { readAt, u64be, u64le, type ByteReader } from './byte-reader.js';
import { LUKS_MAGIC } from './disk-signatures.js';
import type { RefusalReason } from './image-refused.js';

export const DETECTED_FORMATS = ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'qed', 'iso', 'gpt', 'mbr', 'luks'] as const;
export type DetectedFormat = (typeof DETECTED_FORMATS)[number];

/** One reason the image is unsafe, with the refusal code the safety check will use. */
export interface Finding {
  reason: RefusalReason;
  message: string;
}

export interface PartitionInfo {
  /** Which table listed it: the primary GPT, the backup GPT, the MBR, or an MBR logical partition. */
  table: 'gpt' | 'gpt-backup' | 'mbr' | 'mbr-logical';
  /** 1-based position in its table (logical partitions count from 5, like Linux). */
  number: number;
  startOffset: number;
  sizeBytes: number;
  /** GPT type GUID, or the MBR type byte as two hex digits. */
  type: string;
  name?: string;
  /** True when its first sector was read and checked for other formats' headers. */
  inspected: boolean;
  /** Set when the partition's first sector carries another image format's header. */
  hiddenFormat?: DetectedFormat;
}

export interface DiskDetails {
  /** Bytes per logical block the partition table was found with. */
  sectorSize: number;
  partitions: PartitionInfo[];
  /** GPT only: whether a protective (0xEE) MBR was present. */
  protectiveMbr?: boolean;
  /** GPT only: whether the backup header at the end of the disk was found and read. */
  backupGptRead?: boolean;
  /**
   * Byte ranges that hold the partition tables themselves (MBR and extended boot records,
   * GPT headers and partition arrays, primary and backup): what cleaning must erase last.
   */
  tableRanges: Array<{ offset: number; length: number }>;
}

export interface Qcow2Details {
  version: number;
  clusterBits: number;
  virtualSize: number;
  headerLength: number;
  backingFileOffset: number;
  backingFileSize: number;
  backingFile?: string;
  backingFormat?: string;
  /** 0 none, 1 AES (legacy), 2 LUKS. */
  cryptMethod: number;
  /** Bit numbers set in incompatible_features (v3). */
  incompatibleFeatureBits: number[];
  compressionType: number;
  dataFile?: string;
  hasLuksHeaderExtension: boolean;
  featureNames: Array<{ type: 'incompatible' | 'compatible' | 'autoclear'; bit: number; name: string }>;
  extensionTypes: string[];
}

export interface VmdkExtent {
  access: string;
  sectors: number;
  type: string;
  fileName?: string;
}

export interface VmdkDetails {
  /** 'sparse' = KDMV/COWD binary file; 'descriptor' = a text descriptor naming other files. */
  variant: 'sparse' | 'descriptor';
  version?: number;
  capacitySectors?: number;
  createType?: string;
  parentCid?: string;
  parentFileNameHint?: string;
  extents: VmdkExtent[];
}

export interface VhdDetails {
  footerAt: 'start' | 'end';
  diskType: 'fixed' | 'dynamic' | 'differencing' | 'unknown';
  currentSize: number;
  checksumValid: boolean;
}

export interface VhdxDetails {
  /** Whether the region table and the metadata's file parameters could be read. */
  metadataRead: boolean;
  /** MS-VHDX 2.6.2.1 File Parameters HasParent: a differencing disk. */
  hasParent: boolean;
}

export interface LuksDetails {
  version: number;
}

export interface IsoDetails {
  descriptorOffset: number;
  /** Hybrid ISOs carry an MBR/GPT too; their partitions are checked like a raw disk's. */
  partitions: PartitionInfo[];
}

interface InspectionOf<F extends DetectedFormat, D> {
  format: F;
  details: D;
  /** Human-readable list of what is unsafe; empty when nothing is. Mirrors `findings`. */
  safetyProblems: string[];
  findings: Finding[];
}

export type Inspection =
  | InspectionOf<'raw' | 'gpt' | 'mbr', DiskDetails>
  | InspectionOf<'qcow2', Qcow2Details>
  | InspectionOf<'vmdk', VmdkDetails>
  | InspectionOf<'vhd', VhdDetails>
  | InspectionOf<'vhdx', VhdxDetails>
  | InspectionOf<'qed', Record<string, never>>
  | InspectionOf<'iso', IsoDetails>
  | InspectionOf<'luks', LuksDetails>;

/** gpt and mbr are ways a raw disk is laid out; qemu-img and the declared format call them raw. */
export function baseFormat(format: DetectedFormat): DetectedFormat {
  return format === 'gpt' || format === 'mbr' ? 'raw' : format;
}

// ---- limits: every length read from the image is checked against these ----
const HEAD_BYTES = 64 * 1024;
const MAX_QCOW2_EXTENSIONS = 64;
const MAX_VMDK_DESCRIPTOR_BYTES = 1024 * 1024;
const MAX_VMDK_EXTENTS = 1024;
const MAX_GPT_ENTRIES = 1024;
const MAX_GPT_ENTRY_SIZE = 4096;
const MAX_EBR_HOPS = 128;
const MAX_PARTITIONS_CHECKED = 2048;

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb"
const QED_MAGIC = Buffer.from('QED\0', 'latin1'); // qed_spec.txt: 'Q' 'E' 'D' 0x00
const VMDK4_MAGIC = Buffer.from('KDMV', 'latin1');
const VMDK3_MAGIC = Buffer.from('COWD', 'latin1');
const VHD_COOKIE = Buffer.from('conectix', 'latin1');
const VHDX_SIGNATURE = Buffer.from('vhdxfile', 'latin1');
const GPT_SIGNATURE = Buffer.from('EFI PART', 'latin1');
const ISO_IDENTIFIER = Buffer.from('CD001', 'latin1');

// qcow2.txt "Header extensions".
const QCOW2_EXT_END = 0x00000000;
const QCOW2_EXT_BACKING_FORMAT = 0xe2792aca;
const QCOW2_EXT_FEATURE_NAMES = 0x6803f857;
const QCOW2_EXT_BITMAPS = 0x23852875;
const QCOW2_EXT_LUKS = 0x0537be77;
const QCOW2_EXT_DATA_FILE = 0x44415441;
const QCOW2_INCOMPAT_DIRTY = 0;
const QCOW2_INCOMPAT_CORRUPT = 1;
const QCOW2_INCOMPAT_DATA_FILE = 2;
const QCOW2_INCOMPAT_COMPRESSION = 3;
const QCOW2_INCOMPAT_EXTL2 = 4;
const QCOW2_KNOWN_INCOMPAT = new Set([
  QCOW2_INCOMPAT_DIRTY,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DATA_FILE,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_INCOMPAT_EXTL2,
]);

const VMDK_ALLOWED_CREATE_TYPES = new Set(['monolithicSparse', 'streamOptimized']);

function startsWith(buf: Buffer, magic: Buffer, at = 0): boolean {
  return buf.length >= at + magic.length && buf.subarray(at, at + magic.length).equals(magic);
}

/** Printable rendering of a name read from an image, for messages: bounded, no control chars. */
function printable(s: string, max = 200): string {
  const cleaned = s.replace(/[^\x20-\x7e]/g, '?');
  return cleaned.length > max ? `${cleaned.slice(0, max)}…` : cleaned;
}

class FindingList {
  readonly items: Finding[] = [];
  add(reason: RefusalReason, message: string): void {
    this.items.push({ reason, message });
  }
}

function result<F extends DetectedFormat, D>(format: F, details: D, findings: FindingList): InspectionOf<F, D> {
  return { format, details, findings: findings.items, safetyProblems: findings.items.map((f) => f.message) };
}

/**
 * Detects the format of the bytes behind `reader` and what is unsafe about them. Unknown
 * layouts are "raw" (as in Ironic): raw images are written to disk as they are and never
 * handed to qemu-img, so an unrecognised format cannot make qemu-img read anything.
 */
export async function inspectImage(reader: ByteReader): Promise<Inspection> {
  const head = await readAt(reader, 0, HEAD_BYTES);
  const findings = new FindingList();

  if (startsWith(head, QCOW2_MAGIC)) return result('qcow2', await inspectQcow2(reader, head, findings), findings);
  if (startsWith(head, QED_MAGIC)) {
    findings.add(
      'qed-refused',
      'the image is in QED format, which Ingot never accepts (qemu deprecated it); convert it to qcow2 or raw with `qemu-img convert -f qed -O qcow2`',
    );
    return result('qed', {}, findings);
  }
  if (startsWith(head, VMDK4_MAGIC) || startsWith(head, VMDK3_MAGIC)) {
    return result('vmdk', await inspectVmdkSparse(reader, head, findings), findings);
  }
  if (looksLikeVmdkDescriptor(head)) return result('vmdk', inspectVmdkDescriptor(head, findings), findings);
  if (startsWith(head, VHDX_SIGNATURE)) return result('vhdx', await inspectVhdx(reader, findings), findings);
  if (startsWith(head, VHD_COOKIE)) return result('vhd', inspectVhdFooter(head.subarray(0, 512), 'start', findings), findings);
  if (startsWith(head, LUKS_MAGIC)) {
    const version = head.length >= 8 ? head.readUInt16BE(6) : 0;
    findings.add('encrypted', `the image is a LUKS${version || ''} encrypted container; Ingot cannot inspect or verify encrypted images: deploy an unencrypted image and encrypt on first boot`);
    return result('luks', { version }, findings);
  }

  const isoOffset = await findIsoDescriptor(reader);
  if (isoOffset !== undefined) {
    const disk = await inspectPartitionTables(reader, head, findings);
    return result('iso', { descriptorOffset: isoOffset, partitions: disk?.details.partitions ?? [] }, findings);
  }

  const disk = await inspectPartitionTables(reader, head, findings);
  if (disk) return result(disk.format, disk.details, findings);

  // A fixed VHD is raw data followed by a 512-byte footer (the spec puts it at the end).
  if (reader.size >= 512 && reader.complete !== false) {
    const tail = await readAt(reader, reader.size - 512, 512);
    if (startsWith(tail, VHD_COOKIE)) {
      const vhd = inspectVhdFooter(tail, 'end', findings);
      if (vhd.checksumValid) return result('vhd', vhd, findings);
    }
  }
  return result('raw', { sectorSize: 512, partitions: [], tableRanges: [] }, findings);
}

// ---------------------------------------------------------------------------- qcow2

async function inspectQcow2(reader: ByteReader, head: Buffer, findings: FindingList): Promise<Qcow2Details> {
  const details: Qcow2Details = {
    version: 0,
    clusterBits: 0,
    virtualSize: 0,
    headerLength: 0,
    backingFileOffset: 0,
    backingFileSize: 0,
    cryptMethod: 0,
    incompatibleFeatureBits: [],
    compressionType: 0,
    hasLuksHeaderExtension: false,
    featureNames: [],
    extensionTypes: [],
  };
  if (head.length < 72) {
    findings.add('malformed', 'the qcow2 header is truncated (fewer than 72 bytes); the file is damaged or not a qcow2 image');
    return details;
  }
  details.version = head.readUInt32BE(4);
  const backingOffset = u64be(head, 8);
  details.backingFileSize = head.readUInt32BE(16);
  details.clusterBits = head.readUInt32BE(20);
  details.virtualSize = u64be(head, 24) ?? -1;
  details.cryptMethod = head.readUInt32BE(32);

  if (details.version !== 2 && details.version !== 3) {
    findings.add('unsupported-feature', `the qcow2 header has version ${details.version}; only versions 2 and 3 are understood, so its features cannot be checked`);
    return details;
  }
  // qcow2.txt: cluster_bits must be 9 (512 B) … 21 (2 MiB).
  if (details.clusterBits < 9 || details.clusterBits > 21) {
    findings.add('malformed', `the qcow2 cluster_bits is ${details.clusterBits}, outside 9…21; the header is damaged or crafted`);
    return details;
  }
  const clusterSize = 2 ** details.clusterBits;
  if (details.virtualSize < 0) findings.add('malformed', 'the qcow2 virtual size does not fit in 2^53 bytes');

  if (backingOffset === undefined) {
    findings.add('backing-file', 'the qcow2 header names a backing file at an impossible offset; images with backing files are refused');
  } else if (backingOffset !== 0 || details.backingFileSize !== 0) {
    details.backingFileOffset = backingOffset;
    // qemu reads at most 1023 bytes of name from within the first cluster.
    const len = Math.min(details.backingFileSize, 1023);
    const name = await readAt(reader, backingOffset, len);
    details.backingFile = name.toString('utf8');
    findings.add(
      'backing-file',
      `the qcow2 image has a backing file ("${printable(details.backingFile)}"): qemu-img would read that file from the machine converting it. Flatten it first: \`qemu-img convert -f qcow2 -O qcow2 image.qcow2 flat.qcow2\``,
    );
  }
  if (details.cryptMethod !== 0) {
    const kind = details.cryptMethod === 1 ? 'AES' : details.cryptMethod === 2 ? 'LUKS' : `unknown method ${details.cryptMethod}`;
    findings.add('encrypted', `the qcow2 image is encrypted (${kind}); Ingot cannot inspect or convert encrypted images: publish an unencrypted image`);
  }

  let extStart = 72;
  if (details.version === 3) {
    if (head.length < 104) {
      findings.add('malformed', 'the qcow2 v3 header is truncated (fewer than 104 bytes)');
      return details;
    }
    const incompat = head.readBigUInt64BE(72);
    for (let bit = 0; bit < 64; bit++) if ((incompat >> BigInt(bit)) & 1n) details.incompatibleFeatureBits.push(bit);
    details.headerLength = head.readUInt32BE(100);
    if (details.headerLength < 104 || details.headerLength > clusterSize || details.headerLength % 8 !== 0) {
      findings.add('malformed', `the qcow2 header_length ${details.headerLength} is not a multiple of 8 between 104 and the cluster size`);
      return details;
    }
    if (details.headerLength > 104 && head.length > 104) details.compressionType = head[104]!;
    extStart = details.headerLength;
  } else {
    details.headerLength = 72;
  }

  await readQcow2Extensions(reader, head, extStart, clusterSize, details, findings);

  const bits = new Set(details.incompatibleFeatureBits);
  if (bits.has(QCOW2_INCOMPAT_CORRUPT)) {
    findings.add('unsupported-feature', 'the qcow2 image is marked corrupt (incompatible feature bit 1); repair it with `qemu-img check -r all` and republish');
  }
  if (bits.has(QCOW2_INCOMPAT_DATA_FILE) || details.dataFile !== undefined) {
    const named = details.dataFile !== undefined ? ` ("${printable(details.dataFile)}")` : '';
    findings.add(
      'external-data-file',
      `the qcow2 image keeps its data in an external data file${named}: qemu-img would read that file from the machine converting it. Convert it to a self-contained qcow2 or raw image first`,
    );
  }
  const unknown = details.incompatibleFeatureBits.filter((b) => !QCOW2_KNOWN_INCOMPAT.has(b));
  if (unknown.length > 0) {
    findings.add(
      'unsupported-feature',
      `the qcow2 image sets incompatible feature bit(s) ${unknown.join(', ')} that Ingot does not know; it cannot be checked safely: rewrite it with a current \`qemu-img convert -O qcow2\``,
    );
  }
  if (details.hasLuksHeaderExtension && details.cryptMethod === 0) {
    findings.add('encrypted', 'the qcow2 image carries a LUKS encryption header extension; encrypted images are refused');
  }
  return details;
}

async function readQcow2Extensions(
  reader: ByteReader,
  head: Buffer,
  start: number,
  clusterSize: number,
  details: Qcow2Details,
  findings: FindingList,
): Promise<void> {
  // Extensions live in the first cluster after the header; read that much (head may be shorter
  // than a 2 MiB cluster) but never more than the image holds.
  const area = clusterSize <= head.length ? head.subarray(0, clusterSize) : await readAt(reader, 0, clusterSize);
  let off = start;
  for (let i = 0; i < MAX_QCOW2_EXTENSIONS; i++) {
    if (off + 8 > area.length) {
      if (off + 8 <= clusterSize && (reader.complete !== false || area.length >= clusterSize)) {
        findings.add('malformed', 'the qcow2 header extensions run past the end of the file');
      } else if (off + 8 > clusterSize) {
        findings.add('malformed', 'the qcow2 header extensions run past the first cluster without an end marker');
      } else {
        findings.add('incomplete-inspection', 'the qcow2 header extensions run past the bytes inspected so far');
      }
      return;
    }
    const type = area.readUInt32BE(off);
    const length = area.readUInt32BE(off + 4);
    if (type === QCOW2_EXT_END) return;
    details.extensionTypes.push(`0x${type.toString(16).padStart(8, '0')}`);
    const dataStart = off + 8;
    const dataEnd = dataStart + length;
    if (dataEnd > clusterSize || dataEnd > area.length) {
      findings.add('malformed', `the qcow2 header extension 0x${type.toString(16)} (length ${length}) runs past the first cluster`);
      return;
    }
    const data = area.subarray(dataStart, dataEnd);
    switch (type) {
      case QCOW2_EXT_BACKING_FORMAT:
        details.backingFormat = data.toString('utf8');
        break;
      case QCOW2_EXT_DATA_FILE:
        details.dataFile = data.toString('utf8');
        break;
      case QCOW2_EXT_LUKS:
        details.hasLuksHeaderExtension = true;
        break;
      case QCOW2_EXT_FEATURE_NAMES:
        // 48-byte entries: type (0 incompatible, 1 compatible, 2 autoclear), bit, 46-byte name.
        for (let e = 0; e + 48 <= data.length; e += 48) {
          const kind = data[e] === 0 ? 'incompatible' : data[e] === 1 ? 'compatible' : 'autoclear';
          const name = data.subarray(e + 2, e + 48).toString('latin1').replace(/\0+$/, '');
          details.featureNames.push({ type: kind, bit: data[e + 1]!, name: printable(name, 46) });
        }
        break;
      case QCOW2_EXT_BITMAPS:
      default:
        // qemu ignores unknown extensions; so do we (they cannot make it open files).
        break;
    }
    off = dataStart + Math.ceil(length / 8) * 8;
  }
  findings.add('malformed', `the qcow2 image has more than ${MAX_QCOW2_EXTENSIONS} header extensions`);
}

// ----------------------------------------------------------------------------- VMDK

/** Mirrors qemu's vmdk_probe: comment and blank lines, then "version=1|2|3". */
function looksLikeVmdkDescriptor(head: Buffer): boolean {
  const text = head.subarray(0, 4096).toString('latin1');
  let p = 0;
  while (p < text.length) {
    if (text[p] === '#') {
      const nl = text.indexOf('\n', p);
      if (nl < 0) return false;
      p = nl + 1;
      continue;
    }
    if (text[p] === ' ' || text[p] === '\r' || text[p] === '\n') {
      while (p < text.length && text[p] === ' ') p++;
      if (text[p] === '\r') p++;
      if (p >= text.length || text[p] !== '\n') return false;
      p++;
      continue;
    }
    return /^version=[123]\r?\n/.test(text.slice(p, p + 11));
  }
  return false;
}

async function inspectVmdkSparse(reader: ByteReader, head: Buffer, findings: FindingList): Promise<VmdkDetails> {
  const details: VmdkDetails = { variant: 'sparse', extents: [] };
  if (startsWith(head, VMDK3_MAGIC)) {
    findings.add('vmdk-create-type', 'the image is a VMDK3 (COWD) sparse file, a legacy subformat Ingot does not accept; convert it to qcow2 or raw');
    return details;
  }
  if (head.length < 44) {
    findings.add('malformed', 'the VMDK sparse header is truncated');
    return details;
  }
  details.version = head.readUInt32LE(4);
  details.capacitySectors = u64le(head, 12);
  const descOffset = u64le(head, 28);
  const descSectors = u64le(head, 36);
  if (descOffset === undefined || descSectors === undefined) {
    findings.add('malformed', 'the VMDK descriptor location does not fit in 2^53 bytes');
    return details;
  }
  if (descOffset === 0 || descSectors === 0) {
    findings.add('vmdk-create-type', 'the VMDK sparse file has no embedded descriptor: it is one extent of a multi-file VMDK, not a self-contained image; convert it to qcow2 or raw');
    return details;
  }
  const start = descOffset * 512;
  const length = descSectors * 512;
  if (length > MAX_VMDK_DESCRIPTOR_BYTES || !Number.isSafeInteger(start)) {
    findings.add('malformed', `the VMDK embedded descriptor is ${length} bytes, more than the ${MAX_VMDK_DESCRIPTOR_BYTES} allowed`);
    return details;
  }
  const desc = await readAt(reader, start, length);
  if (desc.length < length) {
    findings.add(
      reader.complete === false && start + length > reader.size ? 'incomplete-inspection' : 'malformed',
      'the VMDK embedded descriptor lies (partly) beyond the bytes available',
    );
  }
  const nul = desc.indexOf(0);
  parseVmdkDescriptor(desc.subarray(0, nul < 0 ? desc.length : nul).toString('latin1'), details, findings);
  const fileExtents = details.extents.filter((e) => e.type !== 'ZERO');
  // In a monolithic sparse file the one SPARSE extent is the file itself (by its own base name).
  if (
    fileExtents.length !== 1 ||
    fileExtents[0]!.type !== 'SPARSE' ||
    fileExtents[0]!.fileName === undefined ||
    /[/\\:]/.test(fileExtents[0]!.fileName)
  ) {
    const listed = fileExtents.map((e) => `${e.type} "${printable(e.fileName ?? '')}"`).join(', ') || 'none';
    findings.add(
      'vmdk-extents',
      `the VMDK descriptor lists extents ${listed}; a self-contained VMDK has exactly one SPARSE extent (itself), so this one would make qemu-img read other files. Convert it to qcow2 or raw on a trusted machine`,
    );
  }
  return details;
}

function inspectVmdkDescriptor(head: Buffer, findings: FindingList): VmdkDetails {
  const details: VmdkDetails = { variant: 'descriptor', extents: [] };
  const nul = head.indexOf(0);
  parseVmdkDescriptor(head.subarray(0, nul < 0 ? head.length : nul).toString('latin1'), details, findings);
  const fileExtents = details.extents.filter((e) => e.fileName !== undefined);
  if (fileExtents.length > 0) {
    findings.add(
      'vmdk-extents',
      `the image is a VMDK text descriptor whose data lives in other files (${fileExtents
        .slice(0, 4)
        .map((e) => `"${printable(e.fileName!)}"`)
        .join(', ')}); qemu-img would read those files from the converting machine. Publish a monolithicSparse or streamOptimized VMDK, or qcow2/raw`,
    );
  }
  return details;
}

function parseVmdkDescriptor(text: string, details: VmdkDetails, findings: FindingList): void {
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const extent = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"([^"]*)")?/.exec(line);
    if (extent) {
      if (details.extents.length >= MAX_VMDK_EXTENTS) continue;
      const ext: VmdkExtent = { access: extent[1]!, sectors: Number(extent[2]), type: extent[3]!.toUpperCase() };
      if (extent[4] !== undefined) ext.fileName = extent[4];
      details.extents.push(ext);
      continue;
    }
    const kv = /^([A-Za-z.]+)\s*=\s*"?([^"]*)"?$/.exec(line);
    if (!kv) continue;
    if (kv[1] === 'createType') details.createType = kv[2]!;
    else if (kv[1] === 'parentCID') details.parentCid = kv[2]!;
    else if (kv[1] === 'parentFileNameHint') details.parentFileNameHint = kv[2]!;
  }
  if (details.createType === undefined || !VMDK_ALLOWED_CREATE_TYPES.has(details.createType)) {
    findings.add(
      'vmdk-create-type',
      `the VMDK createType is ${details.createType === undefined ? 'missing' : `"${printable(details.createType)}"`}; only monolithicSparse and streamOptimized are accepted. Convert it with \`qemu-img convert -O vmdk -o subformat=streamOptimized\` or publish qcow2/raw`,
    );
  }
  const hasParentCid = details.parentCid !== undefined && details.parentCid.toLowerCase() !== 'ffffffff';
  if (details.parentFileNameHint !== undefined || hasParentCid) {
    findings.add('backing-file', 'the VMDK is a delta disk with a parent (parentCID/parentFileNameHint); flatten it first');
  }
}

// ------------------------------------------------------------------------------ VHD

function inspectVhdFooter(footer: Buffer, at: 'start' | 'end', findings: FindingList): VhdDetails {
  const details: VhdDetails = { footerAt: at, diskType: 'unknown', currentSize: 0, checksumValid: false };
  if (footer.length < 512) {
    findings.add('malformed', 'the VHD footer is truncated');
    return details;
  }
  details.currentSize = u64be(footer, 48) ?? -1;
  const type = footer.readUInt32BE(60);
  details.diskType = type === 2 ? 'fixed' : type === 3 ? 'dynamic' : type === 4 ? 'differencing' : 'unknown';
  // VHD spec: checksum is the ones' complement of the byte sum, checksum field excluded.
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += footer[i]!;
  details.checksumValid = (~sum >>> 0) === footer.readUInt32BE(64);
  if (details.diskType === 'differencing') {
    findings.add('backing-file', 'the VHD is a differencing disk that reads a parent VHD; merge it into a standalone image first');
  }
  return details;
}

// ----------------------------------------------------------------------------- VHDX

// MS-VHDX 2.2.3 region table (at 192 KiB, copy at 256 KiB), 2.6.1 metadata table.
const VHDX_REGION_TABLE = 192 * 1024;
const VHDX_METADATA_REGION = '8B7CA206-4790-4B9A-B8FE-575F050F886E';
const VHDX_FILE_PARAMETERS = 'CAA16737-FA36-4D43-B3B6-33F0AA44E76B';
const VHDX_PARENT_LOCATOR = 'A8D35F2D-B30B-454D-ABF7-D3D84834AB0C';

async function inspectVhdx(reader: ByteReader, findings: FindingList): Promise<VhdxDetails> {
  const details: VhdxDetails = { metadataRead: false, hasParent: false };
  const regions = await readAt(reader, VHDX_REGION_TABLE, 64 * 1024);
  if (regions.length < 16 || regions.toString('latin1', 0, 4) !== 'regi') return details;
  const count = Math.min(regions.readUInt32LE(8), 2047);
  let metadataOffset: number | undefined;
  for (let i = 0; i < count && 16 + (i + 1) * 32 <= regions.length; i++) {
    const e = 16 + i * 32;
    if (formatGuid(regions.subarray(e, e + 16)) === VHDX_METADATA_REGION) metadataOffset = u64le(regions, e + 16);
  }
  if (metadataOffset === undefined) return details;
  const table = await readAt(reader, metadataOffset, 64 * 1024);
  if (table.length < 32 || table.toString('latin1', 0, 8) !== 'metadata') return details;
  const entries = Math.min(table.readUInt16LE(10), 2047);
  for (let i = 0; i < entries && 32 + (i + 1) * 32 <= table.length; i++) {
    const e = 32 + i * 32;
    const id = formatGuid(table.subarray(e, e + 16));
    if (id === VHDX_PARENT_LOCATOR) details.hasParent = true;
    if (id === VHDX_FILE_PARAMETERS) {
      const params = await readAt(reader, metadataOffset + table.readUInt32LE(e + 16), 8);
      if (params.length === 8) {
        details.metadataRead = true;
        if (params.readUInt32LE(4) & 0b10) details.hasParent = true;
      }
    }
  }
  if (details.hasParent) {
    findings.add('backing-file', 'the VHDX is a differencing disk that reads a parent file; merge it into a standalone image first');
  }
  return details;
}

// ------------------------------------------------------------------------------ ISO

/** ECMA-119 §8.1: volume descriptors start at sector 16 (0x8000); some tools probe 17 and 18 too. */
async function findIsoDescriptor(reader: ByteReader): Promise<number | undefined> {
  for (const at of [0x8001, 0x8801, 0x9001]) {
    const buf = await readAt(reader, at, 5);
    if (buf.equals(ISO_IDENTIFIER)) return at - 1;
  }
  return undefined;
}

// ------------------------------------------------------------------- partition tables

interface MbrEntry {
  number: number;
  status: number;
  type: number;
  startLba: number;
  sectors: number;
}

function readMbrEntries(sector: Buffer): MbrEntry[] | undefined {
  if (sector.length < 512 || sector[510] !== 0x55 || sector[511] !== 0xaa) return undefined;
  const entries: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const e = 446 + i * 16;
    entries.push({
      number: i + 1,
      status: sector[e]!,
      type: sector[e + 4]!,
      startLba: sector.readUInt32LE(e + 8),
      sectors: sector.readUInt32LE(e + 12),
    });
  }
  return entries;
}

/** A boot signature alone is common in random data; an MBR also has sane entries. */
function plausibleMbr(entries: MbrEntry[]): boolean {
  const used = entries.filter((e) => e.type !== 0);
  return (
    used.length > 0 &&
    entries.every((e) => e.status === 0x00 || e.status === 0x80) &&
    used.every((e) => e.sectors > 0 && e.startLba > 0)
  );
}

const MBR_EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);

async function inspectPartitionTables(
  reader: ByteReader,
  head: Buffer,
  findings: FindingList,
): Promise<{ format: 'gpt' | 'mbr'; details: DiskDetails } | undefined> {
  const mbr = readMbrEntries(head.subarray(0, 512));
  const protective = mbr?.some((e) => e.type === 0xee) ?? false;

  for (const sectorSize of [512, 4096]) {
    const header = await readAt(reader, sectorSize, 512);
    if (!startsWith(header, GPT_SIGNATURE)) continue;
    const details: DiskDetails = { sectorSize, partitions: [], protectiveMbr: protective, backupGptRead: false, tableRanges: [{ offset: 0, length: 512 }, { offset: sectorSize, length: sectorSize }] };
    const primary = await readGpt(reader, header, sectorSize, 'gpt', findings);
    if (primary.arrayRange) details.tableRanges.push(primary.arrayRange);
    details.partitions.push(...primary.partitions);
    // Firmware falls back to the backup GPT when the primary is damaged, so a crafted image
    // could show one table here and another to the firmware: read both.
    const backupLba = primary.backupLba ?? Math.floor(reader.size / sectorSize) - 1;
    const backupHeader = await readAt(reader, backupLba * sectorSize, 512);
    if (backupLba > 1 && startsWith(backupHeader, GPT_SIGNATURE)) {
      details.backupGptRead = true;
      const backup = await readGpt(reader, backupHeader, sectorSize, 'gpt-backup', findings);
      details.tableRanges.push({ offset: backupLba * sectorSize, length: sectorSize });
      if (backup.arrayRange) details.tableRanges.push(backup.arrayRange);
      for (const p of backup.partitions) {
        if (!details.partitions.some((q) => q.startOffset === p.startOffset)) details.partitions.push(p);
      }
    }
    // A hybrid MBR lists partitions of its own beside the protective entry.
    if (mbr) details.partitions.push(...(await mbrPartitions(reader, mbr.filter((e) => e.type !== 0xee), sectorSize, findings, details.tableRanges)));
    await checkPartitionContents(reader, details.partitions, findings);
    return { format: 'gpt', details };
  }

  if (mbr && plausibleMbr(mbr)) {
    const tableRanges = [{ offset: 0, length: 512 }];
    const details: DiskDetails = { sectorSize: 512, partitions: await mbrPartitions(reader, mbr, 512, findings, tableRanges), tableRanges };
    await checkPartitionContents(reader, details.partitions, findings);
    return { format: 'mbr', details };
  }
  return undefined;
}

/**
 * The partition tables at the start of `reader` (a disk, or a region of one such as a
 * partition that holds a table of its own), read exactly as inspectImage reads them; undefined
 * when there is none. Cleaning uses it to find every partition and every table to erase.
 */
export async function readPartitionLayout(reader: ByteReader): Promise<{ format: 'gpt' | 'mbr'; details: DiskDetails } | undefined> {
  return inspectPartitionTables(reader, await readAt(reader, 0, HEAD_BYTES), new FindingList());
}

async function readGpt(
  reader: ByteReader,
  header: Buffer,
  sectorSize: number,
  table: 'gpt' | 'gpt-backup',
  findings: FindingList,
): Promise<{ partitions: PartitionInfo[]; backupLba?: number; arrayRange?: { offset: number; length: number } }> {
  const which = table === 'gpt' ? 'primary' : 'backup';
  if (header.length < 92) {
    findings.add('malformed', `the ${which} GPT header is truncated`);
    return { partitions: [] };
  }
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > header.length) {
    findings.add('malformed', `the ${which} GPT header size ${headerSize} is outside 92…512`);
    return { partitions: [] };
  }
  const copy = Buffer.from(header.subarray(0, headerSize));
  const storedCrc = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== storedCrc) {
    findings.add('malformed', `the ${which} GPT header CRC32 does not match; the partition table is damaged or crafted: rewrite it (e.g. \`sgdisk -e\`)`);
  }
  const backupLba = table === 'gpt' ? u64le(header, 32) : undefined;
  const entriesLba = u64le(header, 72);
  const count = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  if (entriesLba === undefined || count > MAX_GPT_ENTRIES || entrySize < 128 || entrySize > MAX_GPT_ENTRY_SIZE || entrySize % 8 !== 0) {
    findings.add('malformed', `the ${which} GPT lists ${count} entries of ${entrySize} bytes; at most ${MAX_GPT_ENTRIES} entries of 128…${MAX_GPT_ENTRY_SIZE} bytes are accepted`);
    return { partitions: [], ...(backupLba !== undefined ? { backupLba } : {}) };
  }
  const arrayStart = entriesLba * sectorSize;
  const arrayLen = count * entrySize;
  const arrayRange = { offset: arrayStart, length: arrayLen };
  const array = await readAt(reader, arrayStart, arrayLen);
  if (array.length < arrayLen) {
    findings.add(
      reader.complete === false ? 'incomplete-inspection' : 'malformed',
      `the ${which} GPT partition array lies beyond the ${reader.complete === false ? 'bytes inspected so far' : 'end of the image'}`,
    );
  } else if (crc32(array) !== header.readUInt32LE(88)) {
    findings.add('malformed', `the ${which} GPT partition array CRC32 does not match; the partition table is damaged or crafted`);
  }
  const partitions: PartitionInfo[] = [];
  for (let i = 0; i < count && (i + 1) * entrySize <= array.length; i++) {
    const e = array.subarray(i * entrySize, (i + 1) * entrySize);
    const typeGuid = e.subarray(0, 16);
    if (typeGuid.every((b) => b === 0)) continue;
    const first = u64le(e, 32);
    const last = u64le(e, 40);
    if (first === undefined || last === undefined || last < first || !Number.isSafeInteger(first * sectorSize)) {
      findings.add('malformed', `the ${which} GPT entry ${i + 1} has an impossible range`);
      continue;
    }
    partitions.push({
      table,
      number: i + 1,
      startOffset: first * sectorSize,
      sizeBytes: (last - first + 1) * sectorSize,
      type: formatGuid(typeGuid),
      name: printable(e.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, ''), 36),
      inspected: false,
    });
  }
  return { partitions, arrayRange, ...(backupLba !== undefined ? { backupLba } : {}) };
}

/** GPT GUIDs store their first three fields little-endian (UEFI 2.10 appendix A). */
function formatGuid(b: Buffer): string {
  const hex = (buf: Buffer) => buf.toString('hex');
  const rev = (s: number, e: number) => hex(Buffer.from(b.subarray(s, e)).reverse());
  return `${rev(0, 4)}-${rev(4, 6)}-${rev(6, 8)}-${hex(b.subarray(8, 10))}-${hex(b.subarray(10, 16))}`.toUpperCase();
}

async function mbrPartitions(reader: ByteReader, entries: MbrEntry[], sectorSize: number, findings: FindingList, tableRanges: DiskDetails['tableRanges']): Promise<PartitionInfo[]> {
  const partitions: PartitionInfo[] = [];
  for (const e of entries) {
    if (e.type === 0 || e.sectors === 0) continue;
    partitions.push({
      table: 'mbr',
      number: e.number,
      startOffset: e.startLba * sectorSize,
      sizeBytes: e.sectors * sectorSize,
      type: e.type.toString(16).padStart(2, '0'),
      inspected: false,
    });
    if (MBR_EXTENDED_TYPES.has(e.type)) partitions.push(...(await logicalPartitions(reader, e.startLba, sectorSize, findings, tableRanges)));
  }
  return partitions;
}

/** Walks the chain of extended boot records; each holds one logical partition and a link. */
async function logicalPartitions(reader: ByteReader, extendedStart: number, sectorSize: number, findings: FindingList, tableRanges: DiskDetails['tableRanges']): Promise<PartitionInfo[]> {
  const out: PartitionInfo[] = [];
  const seen = new Set<number>();
  let ebrLba = extendedStart;
  for (let hop = 0; hop < MAX_EBR_HOPS; hop++) {
    if (seen.has(ebrLba)) {
      findings.add('malformed', 'the MBR extended partition chain loops back on itself');
      return out;
    }
    seen.add(ebrLba);
    const entries = readMbrEntries(await readAt(reader, ebrLba * sectorSize, 512));
    if (!entries) return out;
    tableRanges.push({ offset: ebrLba * sectorSize, length: 512 });
    const [logical, next] = entries;
    if (logical && logical.type !== 0 && logical.sectors > 0) {
      out.push({
        table: 'mbr-logical',
        number: 5 + out.length,
        startOffset: (ebrLba + logical.startLba) * sectorSize,
        sizeBytes: logical.sectors * sectorSize,
        type: logical.type.toString(16).padStart(2, '0'),
        inspected: false,
      });
    }
    if (!next || next.type === 0 || next.startLba === 0) return out;
    ebrLba = extendedStart + next.startLba;
  }
  findings.add('malformed', `the MBR extended partition chain is longer than ${MAX_EBR_HOPS} links`);
  return out;
}

/** Image formats whose header at a partition's start means the disk hides another format. */
function formatAtStart(sector: Buffer): DetectedFormat | undefined {
  if (startsWith(sector, QCOW2_MAGIC)) return 'qcow2';
  if (startsWith(sector, QED_MAGIC)) return 'qed';
  if (startsWith(sector, VMDK4_MAGIC) || startsWith(sector, VMDK3_MAGIC) || looksLikeVmdkDescriptor(sector)) return 'vmdk';
  if (startsWith(sector, VHD_COOKIE)) return 'vhd';
  if (startsWith(sector, VHDX_SIGNATURE)) return 'vhdx';
  if (startsWith(sector, LUKS_MAGIC)) return 'luks';
  return undefined;
}

async function checkPartitionContents(reader: ByteReader, partitions: PartitionInfo[], findings: FindingList): Promise<void> {
  for (const p of partitions.slice(0, MAX_PARTITIONS_CHECKED)) {
    if (p.startOffset >= reader.size) {
      // Beyond a complete image the partition holds whatever the disk held (already cleaned),
      // not image bytes; beyond a download's head it holds bytes we have not seen yet.
      if (reader.complete === false) {
        findings.add('incomplete-inspection', `partition ${p.number} (${p.table}) starts at byte ${p.startOffset}, past the bytes inspected so far; inspect the whole image`);
      }
      continue;
    }
    const sector = await readAt(reader, p.startOffset, 4096);
    p.inspected = true;
    const hidden = formatAtStart(sector);
    if (hidden) {
      p.hiddenFormat = hidden;
      findings.add(
        'hidden-format',
        `partition ${p.number} (${p.table}) at byte ${p.startOffset} starts with a ${hidden} header: the disk hides another image format that tools on the host could open. Rebuild the image without it`,
      );
    }
  }
  if (partitions.length > MAX_PARTITIONS_CHECKED) {
    findings.add('malformed', `the disk lists more than ${MAX_PARTITIONS_CHECKED} partitions`);
  }
}
