// `full` cleaning: every byte of every disk, then every byte read back; a secure erase offered
// by the machine is used instead of zero-fill, and is verified the same way.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CleanVerificationFailed, cleanDisks } from './clean.js';
import { createFileMachine } from './file-machine.js';
import type { MachineAccess } from './machine.js';

const dir = mkdtempSync(join(tmpdir(), 'ingot-clean-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = 9 * 1024 * 1024 + 512; // not a multiple of the 4 MiB chunk

function machineWithDirtyDisks(): MachineAccess {
  writeFileSync(join(dir, 'sda.img'), randomBytes(SIZE));
  writeFileSync(join(dir, 'sdb.img'), randomBytes(SIZE / 2 + 256));
  return createFileMachine({ hardware: {} as never, disks: [{ name: 'sda', file: 'sda.img' }, { name: 'sdb', file: 'sdb.img' }] }, dir);
}

const allZero = (file: string) => readFileSync(join(dir, file)).every((b) => b === 0);

describe('full clean', () => {
  it('zero-fills every disk, reads every byte back, reports the method per disk and progress through 100 %', async () => {
    const machine = machineWithDirtyDisks();
    const steps: Array<[number, string]> = [];
    const result = await cleanDisks(machine, { mode: 'full', onProgress: (p, m) => steps.push([p, m]) });
    expect(allZero('sda.img') && allZero('sdb.img')).toBe(true);
    expect(result.methods).toEqual([`sda: zero-fill, ${SIZE} bytes read back as zeros`, `sdb: zero-fill, ${SIZE / 2 + 256} bytes read back as zeros`]);
    expect(steps.map(([, m]) => m)).toEqual(expect.arrayContaining(['writing zeros over sda', 'reading back sdb to verify the zero-fill']));
    expect(steps.at(-1)![0]).toBe(100);
  });

  it("uses the machine's secure erase when it offers one, and still verifies it", async () => {
    const base = machineWithDirtyDisks();
    const secureErased: string[] = [];
    const machine: MachineAccess = {
      ...base,
      async secureErase(disk) {
        secureErased.push(disk.name);
        writeFileSync(disk.path, Buffer.alloc(disk.sizeBytes));
        return { method: 'nvme-format-secure-erase' };
      },
    };
    const result = await cleanDisks(machine, { mode: 'full' });
    expect(secureErased).toEqual(['sda', 'sdb']);
    expect(result.methods[0]).toBe(`sda: nvme-format-secure-erase, ${SIZE} bytes read back as zeros`);
    expect(result.bytesZeroed).toBe(0);
  });

  it('fails when a secure erase leaves data behind (the read-back catches a device that lied)', async () => {
    const base = machineWithDirtyDisks();
    const machine: MachineAccess = { ...base, secureErase: async () => ({ method: 'ata-security-erase' }) };
    await expect(cleanDisks(machine, { mode: 'full' })).rejects.toThrow(CleanVerificationFailed);
    expect(allZero('sda.img')).toBe(false);
  });
});
