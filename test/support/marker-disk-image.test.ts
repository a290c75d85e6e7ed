// The end-to-end test's disk image, checked without a VM: Debian's own tools (sgdisk, blkid,
// mtools, qemu-img) read what the builder wrote.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBackingFileQcow2, buildMarkerDiskImage, expectedDigestLine, USER_DATA_DIGEST_KEY } from './marker-disk-image.js';
import { missingForTinyIso } from './tiny-boot-iso.js';

const missing = missingForTinyIso();
if (missing.length > 0 && process.env.CI) throw new Error(`marker disk image tests cannot run: missing ${missing.join('; ')}`);
const work = mkdtempSync(join(tmpdir(), 'ingot-marker-disk-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(missing.length > 0)('the marker disk image', () => {
  it('is a GPT disk whose EFI system partition holds the unified kernel image at the removable-media path', () => {
    const image = buildMarkerDiskImage(work);
    const table = execFileSync('sgdisk', ['-p', image.path], { encoding: 'utf8' });
    expect(table).toMatch(/^\s+1\s+2048\s+\d+\s+.*EF00\s+EFI system$/m);
    expect(execFileSync('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', image.path], { encoding: 'utf8' }).trim()).toBe('gpt');
    const fs = execFileSync('blkid', ['-p', '-O', String(image.esp.offset), '-o', 'value', '-s', 'TYPE', image.path], { encoding: 'utf8' }).trim();
    expect(fs).toBe('vfat');
    const listing = execFileSync('mdir', ['-b', '-i', `${image.path}@@${image.esp.offset}`, '::/EFI/BOOT'], { encoding: 'utf8', env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    expect(listing).toContain('BOOTX64.EFI');
    // PE/COFF: "MZ", and the stub's .linux section carries the kernel.
    const uki = execFileSync('mtype', ['-i', `${image.path}@@${image.esp.offset}`, '::/EFI/BOOT/BOOTX64.EFI'], { maxBuffer: 256 * 1024 * 1024, env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    expect(uki.subarray(0, 2).toString('latin1')).toBe('MZ');
    expect(uki.includes(Buffer.from('.linux'))).toBe(true);
    expect(uki.includes(Buffer.from('.initrd'))).toBe(true);
  });

  it('prints the digest that sha256sum gives for the user data', () => {
    const userData = '#cloud-config\nhostname: e2e\n';
    const sum = execFileSync('sha256sum', { input: userData, encoding: 'utf8' }).split(' ')[0];
    expect(expectedDigestLine(userData)).toBe(`${USER_DATA_DIGEST_KEY} ${sum}`);
  });

  it('makes a qcow2 whose backing file qemu-img reports', () => {
    const base = join(work, 'base.raw');
    execFileSync('truncate', ['-s', '1M', base]);
    const hostile = buildBackingFileQcow2(work, base);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', hostile], { encoding: 'utf8' })) as { format: string; 'backing-filename'?: string };
    expect(info.format).toBe('qcow2');
    expect(info['backing-filename']).toBe(base);
  });
});
