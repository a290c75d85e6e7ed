// Cleaning (DESIGN.md "Host lifecycle", deprovisioning). Two modes:
// - metadata: the signatures of every partition and of what it contains, then the partition
//   tables at both ends of each disk, verified by reading back (metadata-erase.ts).
// - full: every byte of every disk. A machine that offers a secure erase for a disk (a real
//   device whose erase is verified: NVMe format with secure erase, ATA security erase, or a
//   discard that guarantees zeroes) uses it; otherwise zeros are written. Either way every
//   byte is then read back and must be zero: a failed verification is a failed clean.
// The result says which method ran on which disk; the conductor records it in the host's events.
import { eraseDiskMetadata } from './metadata-erase.js';
import type { MachineAccess, OpenDisk } from './machine.js';

const MIB = 1024 * 1024;
const CHUNK = 4 * MIB;

export interface CleanOptions {
  mode: 'metadata' | 'full';
  onProgress?(percent: number, message: string): void;
  signal?: AbortSignal;
}

export interface CleanResult {
  disks: string[];
  bytesZeroed: number;
  /** One line per disk, e.g. "sda: zero-fill, 21474836480 bytes read back as zeros". */
  methods: string[];
}

export class CleanVerificationFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CleanVerificationFailed';
  }
}

async function writeZeros(disk: OpenDisk, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
  const zeros = Buffer.alloc(CHUNK);
  for (let at = 0; at < disk.size; ) {
    signal?.throwIfAborted();
    const n = Math.min(zeros.length, disk.size - at);
    await disk.write(zeros.subarray(0, n), at);
    at += n;
    onBytes(n);
  }
  await disk.sync();
}

/** Reads every byte back; throws at the first byte that is not zero. */
async function verifyZeros(disk: OpenDisk, name: string, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
  for (let at = 0; at < disk.size; ) {
    signal?.throwIfAborted();
    const n = Math.min(CHUNK, disk.size - at);
    const buf = await disk.read(at, n);
    const bad = buf.length < n ? buf.length : buf.findIndex((b) => b !== 0);
    if (bad !== -1) throw new CleanVerificationFailed(`cleaning ${name} did not verify: byte ${at + bad} does not read back as zero after the erase`);
    at += n;
    onBytes(n);
  }
}

export async function cleanDisks(machine: MachineAccess, opts: CleanOptions): Promise<CleanResult> {
  const disks = await machine.disks();
  const methods: string[] = [];
  let zeroed = 0;
  if (opts.mode === 'metadata') {
    for (const [i, disk] of disks.entries()) {
      const open = await machine.openDisk(disk.name);
      try {
        const result = await eraseDiskMetadata(open, disk.name, { onStep: (message) => opts.onProgress?.(Math.round((100 * i) / disks.length), message), signal: opts.signal });
        zeroed += result.bytesZeroed;
        methods.push(`${disk.name}: metadata of ${result.regions} region${result.regions === 1 ? '' : 's'} erased and verified`);
      } finally {
        await open.close();
      }
      opts.onProgress?.(Math.round((100 * (i + 1)) / disks.length), `erased and verified the metadata of ${disk.name}`);
    }
    return { disks: disks.map((d) => d.name), bytesZeroed: zeroed, methods };
  }
  // Progress counts each byte twice: once erased, once read back.
  const total = 2 * disks.reduce((s, d) => s + d.sizeBytes, 0) || 1;
  let done = 0;
  let lastPercent = -1;
  for (const disk of disks) {
    const count = (message: string) => (n: number) => {
      done += n;
      const percent = Math.floor((100 * done) / total);
      if (percent !== lastPercent) {
        lastPercent = percent;
        opts.onProgress?.(percent, message);
      }
    };
    const secure = await machine.secureErase?.(disk, { signal: opts.signal });
    const open = await machine.openDisk(disk.name);
    try {
      let method: string;
      if (secure) {
        method = secure.method;
        count(`${method} of ${disk.name} done`)(open.size);
      } else {
        method = 'zero-fill';
        await writeZeros(open, count(`writing zeros over ${disk.name}`), opts.signal);
        zeroed += open.size;
      }
      await verifyZeros(open, disk.name, count(`reading back ${disk.name} to verify the ${method}`), opts.signal);
      methods.push(`${disk.name}: ${method}, ${open.size} bytes read back as zeros`);
    } finally {
      await open.close();
    }
  }
  return { disks: disks.map((d) => d.name), bytesZeroed: zeroed, methods };
}
