// qemu-img, run the way Ironic learned to run it (OSSA-2015-001 "qemu-img info DoS" and
// CVE-2024-44082 "format probing"):
// - the format is always given with -f, so qemu-img never probes: probing is what turns a
//   "raw" file holding a qcow2 header into a read of /etc/shadow through its backing file;
// - under an address-space limit (prlimit --as, else `ulimit -v` in a two-line sh wrapper),
//   because a crafted header can make qemu-img allocate without bound;
// - refused up front when the machine has less free memory than configured (Ironic's
//   DEFAULT.minimum_required_memory, 1 GiB by default);
// - paths are passed as argv entries, never through a shell, and must be absolute: qemu
//   reads "proto:…" or "json:{…}" prefixes in relative file names as protocols, while a
//   name starting with "/" is always a plain file.
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { freemem } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { ImageRefused } from './image-refused.js';

export const DEFAULT_QEMU_IMG_MEMORY_LIMIT = 1024 * 1024 * 1024; // Ironic's QEMU_IMG_LIMITS for info
export const DEFAULT_MIN_FREE_MEMORY = 1024 * 1024 * 1024;

export interface QemuImgLimits {
  /** Address-space limit for the qemu-img process. */
  memoryLimitBytes?: number;
  /** Kills qemu-img after this long. */
  timeoutMs?: number;
  /** How to apply the memory limit; 'auto' prefers prlimit (util-linux) over `ulimit -v`. */
  limiter?: 'auto' | 'prlimit' | 'ulimit';
  /** qemu-img executable; default found on PATH. */
  qemuImg?: string;
}

export interface QemuImgInfo {
  format: string;
  virtualSize: number;
  actualSize?: number;
  backingFilename?: string;
  encrypted?: boolean;
  /** qemu-img's `format-specific` block, e.g. `{type: 'qcow2', data: {'data-file': …}}`. */
  formatSpecific?: { type: string; data: Record<string, unknown> };
}

const MAX_INFO_OUTPUT = 1024 * 1024;
const MAX_STDERR = 16 * 1024;

function checkPath(path: string, field: string): void {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) {
    throw new ImageRefused('conversion-failed', `${field} "${String(path).replace(/[^\x20-\x7e]/g, '?')}" must be an absolute file or device path (qemu-img reads protocol prefixes in other names)`);
  }
}

let prlimitPath: Promise<string | undefined> | undefined;

/** The first executable called `name` on PATH, or undefined. */
export async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** argv that runs `qemu-img …args` under the address-space limit. */
async function limitedCommand(args: string[], limits: QemuImgLimits): Promise<{ file: string; argv: string[] }> {
  const bytes = limits.memoryLimitBytes ?? DEFAULT_QEMU_IMG_MEMORY_LIMIT;
  if (!Number.isSafeInteger(bytes) || bytes < 64 * 1024 * 1024) throw new RangeError('memoryLimitBytes must be an integer of at least 64 MiB');
  const qemuImg = limits.qemuImg ?? 'qemu-img';
  const limiter = limits.limiter ?? 'auto';
  if (limiter !== 'ulimit') {
    prlimitPath ??= findOnPath('prlimit');
    const prlimit = await prlimitPath;
    if (prlimit) return { file: prlimit, argv: [`--as=${bytes}`, '--', qemuImg, ...args] };
    if (limiter === 'prlimit') throw new Error('prlimit (util-linux) is not installed');
  }
  // `ulimit -v` takes KiB. The script is a constant; the limit and every path are positional
  // parameters, so nothing from an image or a spec is ever parsed by the shell.
  const kib = Math.floor(bytes / 1024);
  return { file: '/bin/sh', argv: ['-c', 'ulimit -v "$1" || exit 125; shift; exec "$@"', 'ingot-qemu-img', String(kib), qemuImg, ...args] };
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

async function runQemuImg(args: string[], limits: QemuImgLimits, onStdout?: (text: string) => void, maxStdout = MAX_INFO_OUTPUT): Promise<RunResult> {
  const { file, argv } = await limitedCommand(args, limits);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    });
    let stdout = '';
    let stderr = '';
    let overflow = false;
    const timer =
      limits.timeoutMs !== undefined
        ? setTimeout(() => {
            stderr += `\n(killed after ${limits.timeoutMs} ms)`;
            child.kill('SIGKILL');
          }, limits.timeoutMs)
        : undefined;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      onStdout?.(text);
      if (stdout.length + text.length > maxStdout) {
        if (!overflow && !onStdout) {
          overflow = true;
          child.kill('SIGKILL');
        }
        return;
      }
      stdout += text;
    });
    child.stderr.on('data', (text: string) => {
      if (stderr.length < MAX_STDERR) stderr += text.slice(0, MAX_STDERR - stderr.length);
    });
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (overflow) stderr += '\n(qemu-img output exceeded the limit)';
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function failure(what: string, run: RunResult, limits: QemuImgLimits): ImageRefused {
  const detail = run.stderr.trim().split('\n').slice(-5).join(' ').replace(/[^\x20-\x7e]/g, '?').slice(0, 1000);
  const memoryHint = /alloc|memory/i.test(detail) || run.signal !== null
    ? ` (it runs under a ${limits.memoryLimitBytes ?? DEFAULT_QEMU_IMG_MEMORY_LIMIT}-byte address-space limit; raise it only for images you trust)`
    : '';
  const how = run.signal ? `was killed by ${run.signal}` : `exited with ${run.code}`;
  return new ImageRefused('conversion-failed', `qemu-img ${what} ${how}: ${detail || 'no message'}${memoryHint}`);
}

/**
 * `qemu-img info --output=json -f FORMAT path` under the limits. `format` is qemu-img's name
 * (raw, qcow2, vmdk, vpc, vhdx, luks, …) and is required: this never probes.
 */
export async function qemuImgInfo(path: string, format: string, limits: QemuImgLimits = {}): Promise<QemuImgInfo> {
  checkPath(path, 'the image path');
  if (!/^[a-z0-9_-]{1,32}$/.test(format)) throw new RangeError(`"${format}" is not a qemu-img format name`);
  const effective = { timeoutMs: 60_000, ...limits };
  const run = await runQemuImg(['info', '--output=json', '-f', format, path], effective);
  if (run.code !== 0) throw failure('info', run, effective);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(run.stdout) as Record<string, unknown>;
  } catch (err) {
    throw new ImageRefused('conversion-failed', 'qemu-img info printed something that is not JSON', { cause: err });
  }
  const info: QemuImgInfo = { format: String(parsed.format), virtualSize: Number(parsed['virtual-size']) };
  if (typeof parsed['actual-size'] === 'number') info.actualSize = parsed['actual-size'];
  if (typeof parsed['backing-filename'] === 'string') info.backingFilename = parsed['backing-filename'];
  if (typeof parsed.encrypted === 'boolean') info.encrypted = parsed.encrypted;
  const fs = parsed['format-specific'] as { type?: unknown; data?: unknown } | undefined;
  if (fs && typeof fs.type === 'string') info.formatSpecific = { type: fs.type, data: (fs.data ?? {}) as Record<string, unknown> };
  return info;
}

/** Memory the kernel says can be used without swapping (MemAvailable), else os.freemem(). */
export async function availableMemoryBytes(): Promise<number> {
  try {
    const meminfo = await readFile('/proc/meminfo', 'utf8');
    const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(meminfo);
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return freemem();
}

export interface ConvertToRawOptions extends QemuImgLimits {
  /** Absolute path of the verified source image. */
  source: string;
  /** Absolute path of the target: a block device, an existing file, or a file to create. */
  target: string;
  /** qemu-img's name for the source format, from the inspection (never probed). */
  sourceFormat: string;
  /** Refuse to start when less memory than this is available (default 1 GiB). */
  minFreeMemoryBytes?: number;
  /** Called with 0…100 as qemu-img reports progress. */
  onProgress?(percent: number): void;
  /** Where free memory is read from; tests and callers with cgroup limits may replace it. */
  availableMemory?: () => Promise<number>;
}

export interface ConvertResult {
  targetKind: 'block-device' | 'existing-file' | 'new-file';
  virtualSize: number;
  args: string[];
}

/**
 * Converts `source` to raw bytes on `target`.
 *
 * Choices, per target:
 * - block device: `-n` (qemu-img must not try to create it), `-t directsync` (O_DIRECT + sync:
 *   no page-cache copy of a multi-GB image, and every write is on the disk when qemu-img
 *   exits), `-W` (out-of-order writes; a raw target has no metadata to order) and `-S 0`
 *   (write zero runs explicitly: the disk may hold a previous tenant's data and the image's
 *   zeros must read back as zeros). These are ironic-python-agent's choices.
 * - existing regular file: `-n -S 0` for the same reasons, `-t writeback` (O_DIRECT fails on
 *   tmpfs; the final flush still happens). Bytes past the image's virtual size are left alone.
 * - no file yet: qemu-img creates it, sparse (`-t writeback`).
 * In every case the target must be at least the image's virtual size, checked before starting.
 */
export async function convertToRaw(opts: ConvertToRawOptions): Promise<ConvertResult> {
  checkPath(opts.source, 'the source image');
  checkPath(opts.target, 'the conversion target');
  if (!/^[a-z0-9_-]{1,32}$/.test(opts.sourceFormat) || opts.sourceFormat === 'raw') {
    throw new RangeError(`sourceFormat "${opts.sourceFormat}" must be a qemu-img format name other than raw (raw images are streamed, not converted)`);
  }
  const minFree = opts.minFreeMemoryBytes ?? DEFAULT_MIN_FREE_MEMORY;
  const free = await (opts.availableMemory ?? availableMemoryBytes)();
  if (free < minFree) {
    throw new ImageRefused(
      'insufficient-memory',
      `only ${mib(free)} MiB of memory is available, below the ${mib(minFree)} MiB minimum required to convert an image; retry when other conversions finish, or lower the configured minimum free memory`,
    );
  }
  const limits: QemuImgLimits = {
    ...(opts.memoryLimitBytes !== undefined ? { memoryLimitBytes: opts.memoryLimitBytes } : {}),
    ...(opts.limiter !== undefined ? { limiter: opts.limiter } : {}),
    ...(opts.qemuImg !== undefined ? { qemuImg: opts.qemuImg } : {}),
  };
  const info = await qemuImgInfo(opts.source, opts.sourceFormat, limits);
  if (info.format !== opts.sourceFormat) {
    throw new ImageRefused('format-mismatch', `qemu-img read the source as ${info.format}, not ${opts.sourceFormat}`);
  }

  let targetKind: ConvertResult['targetKind'];
  let targetSize: number | undefined;
  try {
    const st = await stat(opts.target);
    if (st.isBlockDevice()) {
      targetKind = 'block-device';
      targetSize = (await qemuImgInfo(opts.target, 'raw', limits)).virtualSize;
    } else if (st.isFile()) {
      targetKind = 'existing-file';
      targetSize = st.size;
    } else {
      throw new ImageRefused('conversion-failed', `the conversion target ${opts.target} is neither a block device nor a regular file`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    targetKind = 'new-file';
  }
  if (targetSize !== undefined && targetSize < info.virtualSize) {
    throw new ImageRefused(
      'conversion-failed',
      `the image's virtual size is ${info.virtualSize} bytes but the target ${opts.target} holds only ${targetSize}; choose a larger root device (rootDeviceHints) or a smaller image`,
    );
  }

  const args = ['convert', '-p', '-f', opts.sourceFormat, '-O', 'raw'];
  if (targetKind === 'block-device') args.push('-n', '-t', 'directsync', '-W', '-S', '0');
  else if (targetKind === 'existing-file') args.push('-n', '-t', 'writeback', '-S', '0');
  else args.push('-t', 'writeback');
  args.push(opts.source, opts.target);

  let last = -1;
  let carry = '';
  const run = await runQemuImg(
    args,
    { ...limits, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) },
    (text) => {
      // -p prints "    (12.34/100%)\r" repeatedly; a report may be split across chunks.
      carry = (carry + text).slice(-256);
      for (const m of carry.matchAll(/\((\d{1,3}(?:\.\d+)?)\/100%\)/g)) {
        const percent = Math.min(100, Number(m[1]));
        if (percent > last) {
          last = percent;
          opts.onProgress?.(percent);
        }
      }
      const lastParen = carry.lastIndexOf(')');
      if (lastParen >= 0) carry = carry.slice(lastParen + 1);
    },
    0,
  );
  if (run.code !== 0) throw failure('convert', run, limits);
  return { targetKind, virtualSize: info.virtualSize, args };
}

function mib(bytes: number): number {
  return Math.floor(bytes / (1024 * 1024));
}
