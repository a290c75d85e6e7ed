// Cleaning throughput: time per GiB of the agent's `metadata` and `full` cleaning (the code in
// src/agent/clean.ts every agent runs) on a sparse disk file, through the lab's file machine.
//
// Setup: a sparse disk file of --size-gib GiB (default 20) with a GPT (sgdisk) of four
// partitions, each holding an ext4 filesystem (mkfs.ext4 -E offset=…, so only metadata is
// written and the file stays sparse).
// Measured, once each: `metadata` (find every partition and signature, erase, read back,
// verify), then `full` (zeros over every byte, fsync, every byte read back). Full writes
// SIZE GiB for real: it needs that much free space, and is skipped with --metadata-only.
//
// Run: npm run bench:cleaning [-- --size-gib N] [--metadata-only]
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanDisks } from '../src/agent/clean.js';
import { createFileMachine } from '../src/agent/file-machine.js';

const GIB = 1024 * 1024 * 1024;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

function sizeGib(): number {
  const i = process.argv.indexOf('--size-gib');
  const n = i > 0 ? Number(process.argv[i + 1]) : 20;
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new RangeError('--size-gib takes a whole number of GiB, 1…1024');
  return n;
}

async function main(): Promise<void> {
  const gib = sizeGib();
  const dir = await mkdtemp(join(tmpdir(), 'ingot-bench-cleaning-'));
  const disk = join(dir, 'sda.img');
  try {
    await writeFile(disk, '');
    await truncate(disk, gib * GIB);
    const part = Math.floor((gib * 1024 - 2) / 4); // MiB per partition
    execFileSync('sgdisk', [...[1, 2, 3, 4].map((n) => `-n${n}:0:+${part}M`), disk], { stdio: 'ignore' });
    for (let n = 0; n < 4; n++) {
      execFileSync('mkfs.ext4', ['-q', '-F', '-E', `offset=${(1 + n * part) * 1024 * 1024}`, disk, `${part}M`], { stdio: 'ignore' });
    }
    const machine = createFileMachine({ hardware: {} as never, disks: [{ name: 'sda', file: disk }] });
    console.log(`disk: ${gib} GiB sparse file, GPT with 4 ext4 partitions; load average before: ${load()}`);
    for (const mode of process.argv.includes('--metadata-only') ? (['metadata'] as const) : (['metadata', 'full'] as const)) {
      const started = process.hrtime.bigint();
      const result = await cleanDisks(machine, { mode });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      console.log(`${mode.padEnd(8)} ${seconds.toFixed(2)} s total, ${((seconds * 1000) / gib).toFixed(1)} ms per GiB, ${(result.bytesZeroed / 1024 / 1024).toFixed(0)} MiB zeroed; ${result.methods.join('; ')}; load average: ${load()}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
