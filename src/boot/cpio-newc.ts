// The initramfs archive format: "newc" cpio (the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst). Written so that the same entries
// always give the same bytes: entries sorted by path (a directory before what it holds), every
// mtime, uid and gid zero, inode numbers in that order, one link each. That is what makes
// `ingot ramdisk build` reproducible from the same inputs.

export type CpioEntry =
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'file'; data: Buffer; mode?: number }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'chardev'; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
/** The newc header stores sizes in 8 hex digits. */
const MAX_ENTRY_BYTES = 0xffffffff;
const TRAILER = 'TRAILER!!!';

function checkPath(path: string): void {
  if (path === '' || path.startsWith('/') || path.endsWith('/') || path.split('/').some((p) => p === '' || p === '.' || p === '..') || path.includes('\0')) {
    throw new RangeError(`cpio path "${path}" must be relative, without empty, "." or ".." parts`);
  }
  if (path === TRAILER) throw new RangeError(`cpio path "${path}" is reserved for the archive's end`);
}

/** Paths compare part by part, so `lib/a` sorts before `lib-x` and a directory precedes its contents. */
function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}

/**
 * The archive holding `entries`, in canonical order. Parent directories that are not listed
 * are added (mode 0755). Throws RangeError on a bad path or a path given twice.
 */
export function writeCpioNewc(entries: CpioEntry[]): Buffer {
  const byPath = new Map<string, CpioEntry>();
  for (const entry of entries) {
    checkPath(entry.path);
    if (byPath.has(entry.path)) throw new RangeError(`cpio path "${entry.path}" is given twice`);
    byPath.set(entry.path, entry);
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = byPath.get(dir);
      if (!existing) byPath.set(dir, { path: dir, type: 'dir' });
      else if (existing.type !== 'dir') throw new RangeError(`cpio path "${dir}" is a ${existing.type} but "${path}" is inside it`);
    }
  }
  const sorted = [...byPath.values()].sort((a, b) => comparePaths(a.path, b.path));
  const parts: Buffer[] = [];
  let ino = 1;
  for (const entry of sorted) {
    const data = entry.type === 'file' ? entry.data : entry.type === 'symlink' ? Buffer.from(entry.target, 'utf8') : Buffer.alloc(0);
    const mode =
      entry.type === 'dir' ? S_IFDIR | (entry.mode ?? 0o755)
      : entry.type === 'file' ? S_IFREG | (entry.mode ?? 0o644)
      : entry.type === 'chardev' ? S_IFCHR | (entry.mode ?? 0o600)
      : S_IFLNK | 0o777;
    const rdev = entry.type === 'chardev' ? { major: entry.major, minor: entry.minor } : { major: 0, minor: 0 };
    pushEntry(parts, ino++, entry.path, mode, entry.type === 'dir' ? 2 : 1, data, rdev);
  }
  pushEntry(parts, 0, TRAILER, 0, 1, Buffer.alloc(0), { major: 0, minor: 0 });
  return Buffer.concat(parts);
}

function pushEntry(parts: Buffer[], ino: number, name: string, mode: number, nlink: number, data: Buffer, rdev: { major: number; minor: number }): void {
  if (data.length > MAX_ENTRY_BYTES) throw new RangeError(`cpio entry "${name}" is larger than 4 GiB`);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  const header = Buffer.from(`070701${hex(ino)}${hex(mode)}${hex(0)}${hex(0)}${hex(nlink)}${hex(0)}${hex(data.length)}${hex(0)}${hex(0)}${hex(rdev.major)}${hex(rdev.minor)}${hex(nameBytes.length)}${hex(0)}`, 'ascii');
  const headLength = header.length + nameBytes.length;
  parts.push(header, nameBytes, Buffer.alloc((4 - (headLength % 4)) % 4), data, Buffer.alloc((4 - (data.length % 4)) % 4));
}

export interface CpioMember {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  data: Buffer;
}

/** Reads a newc archive back (tests, and `ingot ramdisk build` checking what it wrote). */
export function readCpioNewc(archive: Buffer): CpioMember[] {
  const members: CpioMember[] = [];
  let offset = 0;
  for (;;) {
    if (offset + 110 > archive.length) throw new RangeError('cpio archive ends before its trailer');
    const header = archive.subarray(offset, offset + 110).toString('ascii');
    if (!header.startsWith('070701')) throw new RangeError(`cpio entry at byte ${offset} is not newc (magic ${header.slice(0, 6)})`);
    const field = (i: number) => parseInt(header.slice(6 + i * 8, 14 + i * 8), 16);
    const nameSize = field(11);
    const fileSize = field(6);
    const nameStart = offset + 110;
    const path = archive.subarray(nameStart, nameStart + nameSize - 1).toString('utf8');
    const dataStart = nameStart + nameSize + ((4 - ((110 + nameSize) % 4)) % 4);
    if (dataStart + fileSize > archive.length) throw new RangeError(`cpio entry "${path}" runs past the archive's end`);
    if (path === TRAILER) return members;
    members.push({ path, mode: field(1), uid: field(2), gid: field(3), mtime: field(5), data: archive.subarray(dataStart, dataStart + fileSize) });
    offset = dataStart + fileSize + ((4 - (fileSize % 4)) % 4);
  }
}
