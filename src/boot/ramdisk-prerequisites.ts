// What `ingot ramdisk build` takes from the installed system, each with the Debian package that
// provides it, so that a missing piece is reported with the `apt-get install` that fixes it.
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { newestInstalledKernel } from './kernel-modules.js';

export const EFI_STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';
export const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
export const BUSYBOX = '/bin/busybox';

/** Programs copied into the ramdisk (with their shared libraries) and the package of each. */
export const RAMDISK_PROGRAMS: ReadonlyArray<{ name: string; pkg: string }> = [
  { name: 'qemu-img', pkg: 'qemu-utils' },
  { name: 'sfdisk', pkg: 'fdisk' },
  { name: 'sgdisk', pkg: 'gdisk' },
  { name: 'blkid', pkg: 'util-linux' },
  { name: 'lsblk', pkg: 'util-linux' },
  { name: 'wipefs', pkg: 'util-linux' },
];

/** Programs the build itself runs. */
const BUILD_TOOLS: ReadonlyArray<{ name: string; pkg: string }> = [
  { name: 'ldd', pkg: 'libc-bin' },
  { name: 'objcopy', pkg: 'binutils' },
  { name: 'mkfs.vfat', pkg: 'dosfstools' },
  { name: 'mmd', pkg: 'mtools' },
  { name: 'mcopy', pkg: 'mtools' },
  { name: 'xorriso', pkg: 'xorriso' },
];

/** Where the build reads the installed system; tests point parts of it elsewhere. */
export interface RamdiskSources {
  programDirs: string[];
  bootDir: string;
  modulesRoot: string;
  busybox: string;
  efiStub: string;
  caBundle: string;
  /** The Node runtime that runs the agent: the one running this build. */
  node: string;
}

export function systemSources(): RamdiskSources {
  return { programDirs: ['/usr/bin', '/usr/sbin', '/bin', '/sbin'], bootDir: '/boot', modulesRoot: '/lib/modules', busybox: BUSYBOX, efiStub: EFI_STUB, caBundle: CA_BUNDLE, node: process.execPath };
}

/** The installed program `name` from the system directories (not from PATH: the ramdisk takes Debian's files). */
export function systemProgram(name: string, sources: RamdiskSources = systemSources()): string | undefined {
  for (const dir of sources.programDirs) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // next directory
    }
  }
  return undefined;
}

export interface MissingPiece {
  what: string;
  pkg: string;
}

export function missingPrerequisites(sources: RamdiskSources): MissingPiece[] {
  const missing: MissingPiece[] = [];
  if (!newestInstalledKernel(sources.bootDir, sources.modulesRoot)) missing.push({ what: `a kernel in ${sources.bootDir} with its modules in ${sources.modulesRoot}`, pkg: 'linux-image-amd64' });
  if (!existsSync(sources.busybox)) missing.push({ what: sources.busybox, pkg: 'busybox-static' });
  if (!existsSync(sources.efiStub)) missing.push({ what: sources.efiStub, pkg: 'systemd-boot-efi' });
  if (!existsSync(sources.caBundle)) missing.push({ what: sources.caBundle, pkg: 'ca-certificates' });
  for (const { name, pkg } of [...RAMDISK_PROGRAMS, ...BUILD_TOOLS]) {
    if (!systemProgram(name, sources)) missing.push({ what: name, pkg });
  }
  return missing;
}

/** "apt-get install a b" for the packages of `missing`, each once. */
export function aptGetInstallFor(missing: MissingPiece[]): string {
  return `apt-get install ${[...new Set(missing.map((m) => m.pkg))].sort().join(' ')}`;
}
