// `ingot ramdisk build` on a stand-in kernel tree (a few small module files with a modules.dep),
// so the build runs in seconds: what the initramfs holds, that the same inputs give the same
// digest, that a missing package is named with its apt-get install, and that a build failing
// half-way leaves nothing where the server looks. The CLI's own errors are checked through
// the real binary.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCpioNewc } from '../src/boot/cpio-newc.js';
import { RAMDISK_PATHS } from '../src/boot/init-script.js';
import { newestInstalledKernel } from '../src/boot/kernel-modules.js';
import { buildRamdisk, RamdiskBuildError } from '../src/boot/ramdisk-build.js';
import { aptGetInstallFor, missingPrerequisites, systemSources, type RamdiskSources } from '../src/boot/ramdisk-prerequisites.js';
import { currentRamdisk, ramdiskRoot } from '../src/boot/ramdisk-store.js';
import { ensureBuilt, runIngot } from './support/ingot-process.js';

const missing = missingPrerequisites(systemSources());
if (missing.length > 0 && process.env.CI) throw new Error(`ramdisk build tests cannot run: ${aptGetInstallFor(missing)}`);
const describeBuild = missing.length === 0 ? describe : describe.skip;

const work = mkdtempSync(join(tmpdir(), 'ingot-ramdisk-build-'));
const VERSION = '9.9.9-test';

/** A kernel tree with nvme (needing nvme-core), an xz-compressed virtio_net and a built-in ahci. */
function standInSources(): RamdiskSources {
  const boot = join(work, 'boot');
  const mods = join(work, 'modules', VERSION);
  mkdirSync(boot, { recursive: true });
  mkdirSync(join(mods, 'kernel'), { recursive: true });
  copyFileSync(newestInstalledKernel()!.image, join(boot, `vmlinuz-${VERSION}`));
  writeFileSync(join(mods, 'kernel', 'nvme-core.ko'), 'NVME-CORE-MODULE');
  writeFileSync(join(mods, 'kernel', 'nvme.ko'), 'NVME-MODULE');
  writeFileSync(join(mods, 'kernel', 'virtio_net.ko.xz'), execFileSync('xz', ['-c'], { input: 'VIRTIO-NET-MODULE' }));
  writeFileSync(join(mods, 'modules.dep'), 'kernel/nvme.ko: kernel/nvme-core.ko\nkernel/nvme-core.ko:\nkernel/virtio_net.ko.xz:\n');
  writeFileSync(join(mods, 'modules.builtin'), 'kernel/drivers/ata/ahci.ko\n');
  // A small program stands in for Node (it only has to be an ELF with libraries).
  return { ...systemSources(), bootDir: boot, modulesRoot: join(work, 'modules'), node: '/bin/true' };
}

describeBuild('ingot ramdisk build', () => {
  let sources: RamdiskSources;
  beforeAll(() => {
    sources = standInSources();
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('builds a kernel, an initramfs holding the userland, tools, modules in load order, the agent and /init, and a boot medium template', async () => {
    const dataDir = join(work, 'data-a');
    const built = await buildRamdisk({ dataDir, sources });
    expect(currentRamdisk(dataDir)?.manifest.digest).toBe(built.manifest.digest);
    expect(readFileSync(built.kernel).equals(readFileSync(join(sources.bootDir, `vmlinuz-${VERSION}`)))).toBe(true);
    const members = new Map(readCpioNewc(gunzipSync(readFileSync(built.initramfs))).map((m) => [m.path, m]));
    for (const path of ['init', 'bin/busybox', 'usr/bin/node', 'usr/bin/qemu-img', 'usr/bin/sfdisk', 'usr/bin/sgdisk', 'usr/bin/blkid', 'lib64/ld-linux-x86-64.so.2', RAMDISK_PATHS.caBundle, RAMDISK_PATHS.agent, 'dev/console']) {
      expect(members.has(path), path).toBe(true);
    }
    expect([...members.keys()].some((p) => /libglib-2\.0\.so/.test(p)), 'qemu-img\'s libraries').toBe(true);
    expect(members.get(RAMDISK_PATHS.moduleLoadOrder)!.data.toString()).toBe('nvme-core.ko\nnvme.ko\nvirtio_net.ko\n');
    expect(members.get(`${RAMDISK_PATHS.moduleDir}/virtio_net.ko`)!.data.toString()).toBe('VIRTIO-NET-MODULE');
    expect(built.manifest.modules.builtin).toEqual(['ahci']);
    expect(built.manifest.modules.absent).toContain('mlx5_core');
    expect(members.get(RAMDISK_PATHS.agent)!.data.toString()).toContain('/agent/v1/lookup');
    expect(built.manifest.packages).toHaveProperty('busybox-static');
    expect(built.manifest.sizes.bootIso).toBe(readFileSync(built.bootIso.path).length);
  }, 300_000);

  it('gives the same digest and the same files for the same inputs', async () => {
    const a = await buildRamdisk({ dataDir: join(work, 'data-b'), sources });
    const b = await buildRamdisk({ dataDir: join(work, 'data-c'), sources });
    expect(b.manifest.digest).toBe(a.manifest.digest);
    expect(readFileSync(b.initramfs).equals(readFileSync(a.initramfs))).toBe(true);
    // A second build into the same store keeps the stored files.
    const again = await buildRamdisk({ dataDir: join(work, 'data-b'), sources });
    expect(again.dir).toBe(a.dir);
    expect(readdirSync(ramdiskRoot(join(work, 'data-b'))).filter((n) => n.startsWith('.'))).toEqual([]);
  }, 300_000);

  it('names the apt-get install that provides what is missing, and stores nothing', async () => {
    const empty = join(work, 'no-programs');
    mkdirSync(empty, { recursive: true });
    const dataDir = join(work, 'data-missing');
    const err = await buildRamdisk({ dataDir, sources: { ...sources, programDirs: [empty], efiStub: join(empty, 'linuxx64.efi.stub') } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(RamdiskBuildError);
    expect((err as Error).message).toContain('apt-get install binutils dosfstools fdisk gdisk libc-bin mtools qemu-utils systemd-boot-efi util-linux xorriso');
    expect((err as Error).message).toContain('qemu-img (qemu-utils)');
    expect(existsSync(ramdiskRoot(dataDir))).toBe(false);
  });

  it('a build that fails half-way leaves the current ramdisk as it was and no partial files', async () => {
    const dataDir = join(work, 'data-d');
    const good = await buildRamdisk({ dataDir, sources });
    const corrupt = join(work, 'corrupt.efi.stub');
    writeFileSync(corrupt, 'this is not a PE file');
    // A different CA bundle makes a different digest, so a build that got stored would show.
    const otherCa = join(work, 'other-ca.crt');
    writeFileSync(otherCa, `${readFileSync(sources.caBundle, 'utf8')}\n`);
    const err = await buildRamdisk({ dataDir, sources: { ...sources, efiStub: corrupt, caBundle: otherCa } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(RamdiskBuildError);
    expect((err as Error).message).toMatch(/nothing was stored: .*objcopy/);
    expect(currentRamdisk(dataDir)?.dir).toBe(good.dir);
    expect(readdirSync(ramdiskRoot(dataDir)).sort()).toEqual(['builds', 'current.json']);
    expect(readdirSync(join(ramdiskRoot(dataDir), 'builds'))).toHaveLength(1);
  }, 300_000);
});

describe('ingot ramdisk (CLI errors)', () => {
  beforeAll(() => ensureBuilt(), 300_000);

  it('show without a build says how to make one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-ramdisk-cli-'));
    try {
      const r = await runIngot(['ramdisk', 'show', '--data-dir', join(dir, 'data')], { cwd: dir, env: { ...process.env } });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('no ramdisk in');
      expect(r.stderr).toContain('ingot ramdisk build --data-dir');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('build refuses an unknown output format before building', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-ramdisk-cli-'));
    try {
      const r = await runIngot(['ramdisk', 'build', '-o', 'xml', '--data-dir', join(dir, 'data')], { cwd: dir, env: { ...process.env } });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('unknown output format');
      expect(existsSync(join(dir, 'data'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('build into a data directory that cannot be created fails with the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-ramdisk-cli-'));
    try {
      writeFileSync(join(dir, 'a-file'), '');
      const r = await runIngot(['ramdisk', 'build', '-q', '--data-dir', join(dir, 'a-file', 'data')], { cwd: dir, env: { ...process.env }, timeoutMs: 240_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ingot: error: cannot write the ramdisk store in .*(ENOTDIR|not a directory)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
