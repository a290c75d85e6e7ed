// A small, dependency-free ISO 9660 (ECMA-119) writer and reader, for the two tiny filesystems
// Ingot makes itself: the agent's boot configuration medium and the config drive (label
// `config-2`, which cloud-init's ConfigDrive source accepts as iso9660 or vfat).
//
// Kept minimal but valid: one Primary Volume Descriptor (ECMA-119 §8.4) and a terminator
// (§8.3), both path tables (§9.4), directory records (§9.1) that never cross a sector, and
// interchange level 2 names (up to 30 d-characters, uppercase; §7.5, §10.2). No Joliet or Rock
// Ridge: Linux mounts such a volume with `map=normal` by default, which shows the names in
// lower case without the `;1` version, so `META_DATA.JSON;1` reads as `meta_data.json` and
// `USER_DATA.;1` as `user_data` — the names cloud-init looks for.
const SECTOR = 2048;
const SYSTEM_AREA_SECTORS = 16;
const MAX_FILE_BYTES = 64 * 1024 * 1024;
const MAX_FILES = 256;

export interface IsoFile {
  /** Slash-separated path, e.g. `openstack/latest/meta_data.json`; letters are stored uppercase. */
  path: string;
  data: Buffer;
}

export interface IsoOptions {
  /** Up to 32 characters, e.g. `config-2` (stored as given: cloud-init and blkid match it exactly). */
  volumeId: string;
  /** Recording time for every record (default now); fixed in tests for reproducible images. */
  date?: Date;
}

interface DirNode {
  name: string;
  dirs: Map<string, DirNode>;
  files: Map<string, Buffer>;
  sector: number;
  size: number;
  number: number;
  parent: DirNode | undefined;
}

function isoName(part: string, what: string): string {
  const upper = part.toUpperCase();
  if (!/^[A-Z0-9_.]{1,30}$/.test(upper) || upper.split('.').length > 2 || upper === '.' || upper === '..') {
    throw new RangeError(`ISO 9660 ${what} "${part}" must be 1-30 of A-Z 0-9 _ with at most one dot`);
  }
  return upper;
}

function both16(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(value, 0);
  b.writeUInt16BE(value, 2);
  return b;
}

function both32(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(value, 0);
  b.writeUInt32BE(value, 4);
  return b;
}

function padded(text: string, length: number): Buffer {
  return Buffer.from(text.slice(0, length).padEnd(length, ' '), 'latin1');
}

/** §9.1.5: seven bytes, years since 1900, GMT offset in 15-minute units (0 = UTC). */
function recordDate(date: Date): Buffer {
  return Buffer.from([date.getUTCFullYear() - 1900, date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), 0]);
}

/** §8.4.26.1: "YYYYMMDDHHMMSScc" digits plus a GMT offset byte. */
function volumeDate(date: Date): Buffer {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const text = `${date.getUTCFullYear()}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}00`;
  return Buffer.concat([Buffer.from(text, 'latin1'), Buffer.from([0])]);
}

function directoryRecord(identifier: Buffer, sector: number, size: number, isDir: boolean, date: Date): Buffer {
  const length = 33 + identifier.length + (identifier.length % 2 === 0 ? 1 : 0);
  const r = Buffer.alloc(length);
  r[0] = length;
  both32(sector).copy(r, 2);
  both32(size).copy(r, 10);
  recordDate(date).copy(r, 18);
  r[25] = isDir ? 2 : 0;
  both16(1).copy(r, 28);
  r[32] = identifier.length;
  identifier.copy(r, 33);
  return r;
}

/** Lays records into sectors so that none crosses a sector boundary (§6.8.1.1). */
function packRecords(records: Buffer[]): Buffer {
  const sectors: Buffer[] = [];
  let current = Buffer.alloc(SECTOR);
  let used = 0;
  for (const r of records) {
    if (used + r.length > SECTOR) {
      sectors.push(current);
      current = Buffer.alloc(SECTOR);
      used = 0;
    }
    r.copy(current, used);
    used += r.length;
  }
  sectors.push(current);
  return Buffer.concat(sectors);
}

function sectorsFor(bytes: number): number {
  return Math.ceil(bytes / SECTOR);
}

/** Builds an ISO 9660 image holding `files`. */
export function buildIso9660(files: IsoFile[], options: IsoOptions): Buffer {
  if (files.length > MAX_FILES) throw new RangeError(`at most ${MAX_FILES} files fit this writer`);
  if (options.volumeId.length === 0 || options.volumeId.length > 32 || !/^[\x20-\x7e]+$/.test(options.volumeId)) {
    throw new RangeError('the volume id must be 1-32 printable ASCII characters');
  }
  const date = options.date ?? new Date();
  const root: DirNode = { name: '', dirs: new Map(), files: new Map(), sector: 0, size: 0, number: 1, parent: undefined };
  for (const file of files) {
    if (file.data.length > MAX_FILE_BYTES) throw new RangeError(`${file.path} is larger than ${MAX_FILE_BYTES} bytes`);
    const parts = file.path.split('/').filter((p) => p !== '');
    if (parts.length === 0 || parts.length > 8) throw new RangeError(`"${file.path}" must have 1-8 path components (ECMA-119 §6.8.2.1)`);
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      const name = isoName(part, 'directory name');
      if (name.includes('.')) throw new RangeError(`ISO 9660 directory name "${part}" must not contain a dot`);
      let next = dir.dirs.get(name);
      if (!next) {
        next = { name, dirs: new Map(), files: new Map(), sector: 0, size: 0, number: 0, parent: dir };
        dir.dirs.set(name, next);
      }
      dir = next;
    }
    let leaf = isoName(parts.at(-1)!, 'file name');
    if (!leaf.includes('.')) leaf += '.';
    leaf += ';1';
    if (dir.files.has(leaf) || dir.dirs.has(leaf)) throw new RangeError(`"${file.path}" is given twice`);
    dir.files.set(leaf, file.data);
  }

  // Directories in path-table order (§9.4: by level, then parent number, then name): breadth-first.
  const ordered: DirNode[] = [];
  const queue: DirNode[] = [root];
  while (queue.length > 0) {
    const dir = queue.shift()!;
    dir.number = ordered.length + 1;
    ordered.push(dir);
    for (const name of [...dir.dirs.keys()].sort()) queue.push(dir.dirs.get(name)!);
  }

  const pathTableSize = ordered.reduce((sum, d) => sum + 8 + Math.max(1, d.name.length) + (Math.max(1, d.name.length) % 2), 0);
  const pathTableSectors = sectorsFor(pathTableSize);
  const lPathSector = SYSTEM_AREA_SECTORS + 2;
  const mPathSector = lPathSector + pathTableSectors;
  let next = mPathSector + pathTableSectors;

  // Directory sizes do not depend on extents, so they can be known before placing anything.
  const entriesOf = (dir: DirNode) => [...[...dir.dirs.keys()].map((n) => ({ n, isDir: true })), ...[...dir.files.keys()].map((n) => ({ n, isDir: false }))].sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  const recordsLength = (dir: DirNode) =>
    packRecords([
      directoryRecord(Buffer.from([0]), 0, 0, true, date),
      directoryRecord(Buffer.from([1]), 0, 0, true, date),
      ...entriesOf(dir).map((e) => directoryRecord(Buffer.from(e.n, 'latin1'), 0, 0, e.isDir, date)),
    ]).length;
  for (const dir of ordered) {
    dir.size = recordsLength(dir);
    dir.sector = next;
    next += dir.size / SECTOR;
  }
  const fileSectors = new Map<Buffer, number>();
  for (const dir of ordered) {
    for (const name of [...dir.files.keys()].sort()) {
      const data = dir.files.get(name)!;
      fileSectors.set(data, next);
      next += Math.max(1, sectorsFor(data.length));
    }
  }
  const totalSectors = next;
  const image = Buffer.alloc(totalSectors * SECTOR);

  const rootRecord = directoryRecord(Buffer.from([0]), root.sector, root.size, true, date);
  const pvd = image.subarray(16 * SECTOR, 17 * SECTOR);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd[6] = 1;
  padded('LINUX', 32).copy(pvd, 8);
  padded(options.volumeId, 32).copy(pvd, 40);
  both32(totalSectors).copy(pvd, 80);
  both16(1).copy(pvd, 120);
  both16(1).copy(pvd, 124);
  both16(SECTOR).copy(pvd, 128);
  both32(pathTableSize).copy(pvd, 132);
  pvd.writeUInt32LE(lPathSector, 140);
  pvd.writeUInt32BE(mPathSector, 148);
  rootRecord.copy(pvd, 156);
  for (const [at, len] of [[190, 128], [318, 128], [446, 128], [702, 37], [739, 37], [776, 37]] as const) padded('', len).copy(pvd, at);
  padded('INGOT', 128).copy(pvd, 574);
  volumeDate(date).copy(pvd, 813);
  volumeDate(date).copy(pvd, 830);
  Buffer.concat([Buffer.from('0000000000000000', 'latin1'), Buffer.from([0])]).copy(pvd, 847);
  volumeDate(date).copy(pvd, 864);
  pvd[881] = 1;

  const terminator = image.subarray(17 * SECTOR, 18 * SECTOR);
  terminator[0] = 255;
  terminator.write('CD001', 1, 'latin1');
  terminator[6] = 1;

  let lAt = lPathSector * SECTOR;
  let mAt = mPathSector * SECTOR;
  for (const dir of ordered) {
    const id = dir.name === '' ? Buffer.from([0]) : Buffer.from(dir.name, 'latin1');
    const parent = dir.parent?.number ?? 1;
    for (const [at, le] of [[lAt, true], [mAt, false]] as const) {
      image[at] = id.length;
      if (le) {
        image.writeUInt32LE(dir.sector, at + 2);
        image.writeUInt16LE(parent, at + 6);
      } else {
        image.writeUInt32BE(dir.sector, at + 2);
        image.writeUInt16BE(parent, at + 6);
      }
      id.copy(image, at + 8);
    }
    const step = 8 + id.length + (id.length % 2);
    lAt += step;
    mAt += step;
  }

  for (const dir of ordered) {
    const parent = dir.parent ?? dir;
    const records = [
      directoryRecord(Buffer.from([0]), dir.sector, dir.size, true, date),
      directoryRecord(Buffer.from([1]), parent.sector, parent.size, true, date),
      ...entriesOf(dir).map((e) => {
        if (e.isDir) {
          const child = dir.dirs.get(e.n)!;
          return directoryRecord(Buffer.from(e.n, 'latin1'), child.sector, child.size, true, date);
        }
        const data = dir.files.get(e.n)!;
        return directoryRecord(Buffer.from(e.n, 'latin1'), fileSectors.get(data)!, data.length, false, date);
      }),
    ];
    packRecords(records).copy(image, dir.sector * SECTOR);
    for (const name of dir.files.keys()) {
      const data = dir.files.get(name)!;
      data.copy(image, fileSectors.get(data)! * SECTOR);
    }
  }
  return image;
}

export interface IsoVolume {
  volumeId: string;
  /** Reads the file at a slash-separated path, matched case-insensitively, ignoring `;1`; undefined when absent. */
  readFile(path: string): Buffer | undefined;
  /** Every file path, lower-cased the way Linux shows them. */
  list(): string[];
}

const MAX_DIR_BYTES = 1024 * 1024;
const MAX_DEPTH = 8;

/** Positional reads over an image that is not held in memory (a CD drive, a medium file). */
export interface IsoSource {
  size: number;
  /** Returns exactly `length` bytes at `offset` (the caller keeps within size). */
  read(offset: number, length: number): Buffer;
}

/**
 * Parses an ISO 9660 image, in memory or behind positional reads (only the descriptors, the
 * directories and the files asked for are read). Every offset is checked against the image's
 * size; anything malformed throws a RangeError saying what.
 */
export function readIso9660(image: Buffer | IsoSource): IsoVolume {
  const source: IsoSource = Buffer.isBuffer(image) ? { size: image.length, read: (offset, length) => image.subarray(offset, offset + length) } : image;
  const fail = (what: string): never => {
    throw new RangeError(`not a readable ISO 9660 image: ${what}`);
  };
  if (source.size < 17 * SECTOR) fail('shorter than the system area and a volume descriptor');
  let pvd: Buffer | undefined;
  for (let s = 16; s < 16 + 32 && (s + 1) * SECTOR <= source.size; s++) {
    const d = source.read(s * SECTOR, SECTOR);
    if (d.toString('latin1', 1, 6) !== 'CD001') fail(`sector ${s} is not a volume descriptor`);
    if (d[0] === 1) {
      pvd = d;
      break;
    }
    if (d[0] === 255) break;
  }
  if (!pvd) return fail('no primary volume descriptor');
  if (pvd.readUInt16LE(128) !== SECTOR) fail('only 2048-byte logical blocks are supported');
  const volumeId = pvd.toString('latin1', 40, 72).trimEnd();

  const extent = (record: Buffer) => {
    const sector = record.readUInt32LE(2);
    const size = record.readUInt32LE(10);
    const start = sector * SECTOR;
    if (start + size > source.size) fail('an extent points past the end of the image');
    return { start, size };
  };
  const files = new Map<string, { start: number; size: number }>();
  const walk = (dirRecord: Buffer, prefix: string, depth: number) => {
    if (depth > MAX_DEPTH) fail('directories nest too deeply');
    const where = extent(dirRecord);
    if (where.size > MAX_DIR_BYTES) fail('a directory is implausibly large');
    const data = source.read(where.start, where.size);
    let at = 0;
    let index = 0;
    while (at < data.length) {
      const length = data[at]!;
      if (length === 0) {
        at = (Math.floor(at / SECTOR) + 1) * SECTOR;
        continue;
      }
      if (length < 34 || at + length > data.length) fail('a directory record is truncated');
      const record = data.subarray(at, at + length);
      const idLength = record[32]!;
      if (33 + idLength > length) fail('a file identifier overruns its record');
      at += length;
      if (index++ < 2) continue; // "." and ".."
      const raw = record.toString('latin1', 33, 33 + idLength);
      const name = raw.replace(/;\d+$/, '').replace(/\.$/, '').toLowerCase();
      if (name === '' || name.includes('/')) fail('a file identifier is empty or contains a slash');
      const path = prefix === '' ? name : `${prefix}/${name}`;
      if (record[25]! & 2) walk(record, path, depth + 1);
      else files.set(path, extent(record));
    }
  };
  walk(pvd.subarray(156, 156 + 34), '', 0);
  return {
    volumeId,
    readFile: (path) => {
      const found = files.get(path.split('/').filter((p) => p !== '').join('/').toLowerCase().replace(/;\d+$/, ''));
      return found ? source.read(found.start, found.size) : undefined;
    },
    list: () => [...files.keys()].sort(),
  };
}
