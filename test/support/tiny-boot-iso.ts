// Tiny bootable UEFI systems made from Debian packages, for lab VM tests: the installed kernel
// (linux-image-amd64) and an initramfs holding busybox-static, the modules it needs and a shell
// script as /init, joined into one EFI program by systemd's stub (systemd-boot-efi; a unified
// kernel image). The ramdisk's own parts do the work (src/boot: kernel and module lookup, the
// canonical cpio, the unified kernel image); this file only adds the test's /init and the
// containers: an El Torito ISO here, a whole-disk GPT image in marker-disk-image.ts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeCpioNewc, type CpioEntry } from '../../src/boot/cpio-newc.js';
import { newestInstalledKernel, readModuleUncompressed, selectModules } from '../../src/boot/kernel-modules.js';
import { EFI_STUB } from '../../src/boot/ramdisk-prerequisites.js';
import { buildUnifiedKernelImage } from '../../src/boot/unified-kernel-image.js';


/** The tools and files the builders need, each with the Debian package that has it. */
export function missingForTinyIso(): string[] {
  const missing: string[] = [];
  const tools: Array<[string, string]> = [['objcopy', 'binutils'], ['mkfs.vfat', 'dosfstools'], ['mcopy', 'mtools'], ['xorriso', 'xorriso'], ['sgdisk', 'gdisk']];
  for (const [tool, pkg] of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      missing.push(`${tool} (${pkg})`);
    }
  }
  if (!existsSync(EFI_STUB)) missing.push(`${EFI_STUB} (systemd-boot-efi)`);
  if (!existsSync('/bin/busybox')) missing.push('/bin/busybox (busybox-static)');
  if (!newestInstalledKernel()) missing.push('/boot/vmlinuz-* (linux-image-amd64)');
  return missing;
}

/** Modules every tiny test system loads: virtio disk and NIC, the ACPI power button and evdev (for acpid). */
export const TEST_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'evdev', 'button'];

/**
 * An initramfs whose /init mounts the basics, loads TEST_MODULES and `extraModules`, runs
 * `script` (busybox sh) and then waits for the ACPI power button, on which it powers off
 * (printing INGOT-TEST-POWERDOWN).
 */
export function buildInitramfs(script: string, extraModules: string[] = []): Buffer {
  const kernel = newestInstalledKernel();
  if (!kernel) throw new Error('no kernel in /boot with modules (apt-get install linux-image-amd64)');
  const selection = selectModules(kernel.modulesDir, [...TEST_MODULES, ...extraModules]);
  if (selection.absent.length > 0) throw new Error(`kernel ${kernel.version} has no module ${selection.absent.join(', ')}`);
  const moduleName = (file: string) => file.split('/').pop()!.replace(/\.(xz|zst)$/, '');
  const init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
${selection.files.map((m) => `insmod /lib/mod/${moduleName(m)}`).join('\n')}
mkdir -p /etc/acpi/PWRF /var/run /var/log
printf '#!/bin/sh\\necho INGOT-TEST-POWERDOWN >/dev/ttyS0\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
echo 'PWRF PWRF/00000080' > /etc/acpid.conf
acpid -c /etc/acpi -a /etc/acpid.conf
${script}
while true; do sleep 3600; done
`;
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'etc', 'lib/mod', 'mnt', 'tmp'].map((path): CpioEntry => ({ path, type: 'dir' })),
    { path: 'bin/busybox', type: 'file', mode: 0o755, data: readFileSync('/bin/busybox') },
    { path: 'init', type: 'file', mode: 0o755, data: Buffer.from(init) },
    ...selection.files.map((m): CpioEntry => ({ path: `lib/mod/${moduleName(m)}`, type: 'file', mode: 0o644, data: readModuleUncompressed(join(kernel.modulesDir, m)) })),
  ];
  return gzipSync(writeCpioNewc(entries), { level: 1 });
}

/** Writes DIR/BOOTX64.EFI: a unified kernel image of the newest kernel, `initramfs` and `cmdline`. */
export function buildTinyUki(dir: string, initramfs: Buffer, cmdline = 'console=ttyS0 quiet'): string {
  const kernel = newestInstalledKernel();
  if (!kernel) throw new Error('no kernel in /boot (apt-get install linux-image-amd64)');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'initrd.gz'), initramfs);
  writeFileSync(join(dir, 'cmdline'), cmdline);
  const uki = join(dir, 'BOOTX64.EFI');
  buildUnifiedKernelImage({ efiStub: EFI_STUB, kernel: kernel.image, initramfs: join(dir, 'initrd.gz'), cmdlineFile: join(dir, 'cmdline') }, uki);
  return uki;
}

export function run(cmd: string, args: string[], cwd: string): void {
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
}

/** A FAT file system image at `path` holding `uki` as EFI/BOOT/BOOTX64.EFI (the removable-media path). */
export function buildEfiFat(path: string, uki: string, extraKiB = 512): number {
  const kib = Math.ceil(statSync(uki).size / 1024) + extraKiB;
  rmSync(path, { force: true });
  run('mkfs.vfat', ['-C', path, String(kib)], '/');
  run('mmd', ['-i', path, '::/EFI', '::/EFI/BOOT'], '/');
  run('mcopy', ['-i', path, uki, '::/EFI/BOOT/BOOTX64.EFI'], '/');
  return kib * 1024;
}

/**
 * Writes DIR/tiny.iso: an ISO 9660 image whose El Torito EFI boot image holds
 * EFI/BOOT/BOOTX64.EFI, a unified kernel image of the newest kernel, `initramfs` and `cmdline`.
 */
export function buildTinyUefiIso(dir: string, initramfs: Buffer, cmdline = 'console=ttyS0 quiet'): string {
  const uki = buildTinyUki(dir, initramfs, cmdline);
  mkdirSync(join(dir, 'iso-root'), { recursive: true });
  buildEfiFat(join(dir, 'iso-root', 'efi.img'), uki);
  run('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'INGOT_TEST', '-e', 'efi.img', '-no-emul-boot', '-o', 'tiny.iso', 'iso-root'], dir);
  return join(dir, 'tiny.iso');
}
