// The real qemu-img, under the real prlimit and the real `ulimit -v` wrapper.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeGpt } from '../../test/support/gpt.js';
import { availableMemoryBytes, convertToRaw, qemuImgInfo } from './qemu-img.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
let dir: string;
let raw: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ingot-qemu-img-'));
  raw = writeGpt(Buffer.alloc(4 * MiB), [{ firstLba: 2048, lastLba: 6000 }]);
  raw.fill(0x5a, 2048 * 512, 2100 * 512);
  await writeFile(join(dir, 'disk.raw'), raw);
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'disk.raw'), join(dir, 'disk.qcow2')]);
  // Stands in for qemu-img to show the limit the child really runs under.
  await writeFile(
    join(dir, 'show-limit'),
    '#!/bin/sh\nlimit=$(awk \'/Max address space/ {print $4}\' /proc/self/limits)\nprintf \'{"format":"%s","virtual-size":%s}\' "$4" "$limit"\n',
  );
  await chmod(join(dir, 'show-limit'), 0o755);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('qemuImgInfo', () => {
  it('reads the format it is told to, never a probed one', async () => {
    expect(await qemuImgInfo(join(dir, 'disk.qcow2'), 'qcow2')).toMatchObject({ format: 'qcow2', virtualSize: 4 * MiB });
    // Told "raw", qemu-img reads the qcow2 file as raw bytes: no probing happened.
    const asRaw = await qemuImgInfo(join(dir, 'disk.qcow2'), 'raw');
    expect(asRaw.format).toBe('raw');
    expect(asRaw.virtualSize).not.toBe(4 * MiB);
  });

  it.each(['prlimit', 'ulimit'] as const)('runs under the address-space limit with %s', async (limiter) => {
    const info = await qemuImgInfo(join(dir, 'disk.qcow2'), 'qcow2', { qemuImg: join(dir, 'show-limit'), limiter, memoryLimitBytes: 200 * MiB });
    expect(info.format).toBe('qcow2');
    expect(info.virtualSize).toBe(200 * MiB);
  });

  it('refuses relative paths and protocol prefixes, which qemu would parse', async () => {
    await expect(qemuImgInfo('disk.qcow2', 'qcow2')).rejects.toMatchObject({ reason: 'conversion-failed' });
    await expect(qemuImgInfo('json:{"file.filename":"/etc/passwd"}', 'raw')).rejects.toThrow(/absolute/);
    await expect(qemuImgInfo(join(dir, 'disk.qcow2'), 'qcow2,file.filename=/etc/passwd')).rejects.toThrow(RangeError);
  });

  it('reports qemu-img failures as conversion-failed with its message', async () => {
    await expect(qemuImgInfo(join(dir, 'missing.qcow2'), 'qcow2')).rejects.toMatchObject({ reason: 'conversion-failed', message: expect.stringContaining('No such file') });
  });
});

describe('convertToRaw', () => {
  it('converts into a new file, reporting progress, with -f given explicitly', async () => {
    const target = join(dir, 'new.raw');
    const progress: number[] = [];
    const result = await convertToRaw({ source: join(dir, 'disk.qcow2'), target, sourceFormat: 'qcow2', memoryLimitBytes: 512 * MiB, minFreeMemoryBytes: 0, onProgress: (p) => progress.push(p) });
    expect(result.targetKind).toBe('new-file');
    expect(result.args.slice(0, 6)).toEqual(['convert', '-p', '-f', 'qcow2', '-O', 'raw']);
    expect((await readFile(target)).equals(raw)).toBe(true);
    expect(progress.at(-1)).toBe(100);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  it('overwrites an existing, larger target completely (zeros included) and leaves the rest', async () => {
    const target = join(dir, 'existing.raw');
    await writeFile(target, Buffer.alloc(6 * MiB, 0xff));
    const result = await convertToRaw({ source: join(dir, 'disk.qcow2'), target, sourceFormat: 'qcow2', minFreeMemoryBytes: 0, limiter: 'ulimit' });
    expect(result.targetKind).toBe('existing-file');
    expect(result.args).toEqual(expect.arrayContaining(['-n', '-S', '0']));
    const written = await readFile(target);
    expect(written.length).toBe(6 * MiB);
    expect(written.subarray(0, 4 * MiB).equals(raw)).toBe(true);
    expect(written.subarray(4 * MiB).every((b) => b === 0xff)).toBe(true);
  });

  it('refuses a target smaller than the image, before writing', async () => {
    const target = join(dir, 'small.raw');
    await writeFile(target, Buffer.alloc(1 * MiB, 0xee));
    await expect(convertToRaw({ source: join(dir, 'disk.qcow2'), target, sourceFormat: 'qcow2', minFreeMemoryBytes: 0 })).rejects.toMatchObject({
      reason: 'conversion-failed',
      message: expect.stringContaining('holds only 1048576'),
    });
    expect((await readFile(target)).every((b) => b === 0xee)).toBe(true);
  });

  it('refuses to start when free memory is below the minimum', async () => {
    const target = join(dir, 'never.raw');
    await expect(convertToRaw({ source: join(dir, 'disk.qcow2'), target, sourceFormat: 'qcow2', minFreeMemoryBytes: Number.MAX_SAFE_INTEGER })).rejects.toMatchObject({
      reason: 'insufficient-memory',
      message: expect.stringMatching(/MiB of memory is available, below the \d+ MiB minimum/),
    });
    await expect(
      convertToRaw({ source: join(dir, 'disk.qcow2'), target, sourceFormat: 'qcow2', minFreeMemoryBytes: 2 * MiB, availableMemory: async () => 1 * MiB }),
    ).rejects.toMatchObject({ reason: 'insufficient-memory' });
    expect(await readdir(dir)).not.toContain('never.raw');
    expect(await availableMemoryBytes()).toBeGreaterThan(0);
  });

  it('passes hostile file names as arguments, never through a shell', async () => {
    const source = join(dir, 'a b $(touch pwned) `touch pwned2`;.qcow2');
    await writeFile(source, await readFile(join(dir, 'disk.qcow2')));
    const target = join(dir, "out ' \" $HOME.raw");
    await convertToRaw({ source, target, sourceFormat: 'qcow2', minFreeMemoryBytes: 0, limiter: 'ulimit' });
    expect((await readFile(target)).equals(raw)).toBe(true);
    const names = await readdir(dir);
    expect(names).not.toContain('pwned');
    expect(names).not.toContain('pwned2');
  });

  it('refuses a source that qemu-img does not read as the declared format', async () => {
    await expect(convertToRaw({ source: join(dir, 'disk.raw'), target: join(dir, 'x.raw'), sourceFormat: 'qcow2', minFreeMemoryBytes: 0 })).rejects.toMatchObject({
      reason: 'conversion-failed',
    });
    await expect(convertToRaw({ source: join(dir, 'disk.raw'), target: join(dir, 'x.raw'), sourceFormat: 'raw', minFreeMemoryBytes: 0 })).rejects.toThrow(RangeError);
  });
});
