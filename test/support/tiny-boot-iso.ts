// A tiny bootable UEFI ISO made from Debian packages, for lab VM tests: the installed kernel
// (linux-image-amd64) and an initramfs holding busybox-static, the virtio/ACPI modules it
// needs and a shell script as /init, joined into one EFI program by systemd's stub
// (systemd-boot-efi; a unified kernel image, as `ukify` would make) and put on an El Torito
// EFI boot image (dosfstools, mtools, xorriso).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const EFI_STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';

/** The tools and files the builder needs, each with the Debian package that has it. */
export function missingForTinyIso(): string[] {
  const missing: string[] = [];
  const tools: Array<[string, string]> = [['objcopy', 'binutils'], ['mkfs.vfat', 'dosfstools'], ['mcopy', 'mtools'], ['xorriso', 'xorriso']];
  for (const [tool, pkg] of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      missing.push(`${tool} (${pkg})`);
    }
  }
  if (!existsSync(EFI_STUB)) missing.push(`${EFI_STUB} (systemd-boot-efi)`);
  if (!existsSync('/bin/busybox')) missing.push('/bin/busybox (busybox-static)');
  if (!newestKernel()) missing.push('/boot/vmlinuz-* (linux-image-amd64)');
  return missing;
}

export function newestKernel(): { version: string; path: string } | undefined {
  let names: string[] = [];
  try {
    names = readdirSync('/boot').filter((n) => n.startsWith('vmlinuz-'));
  } catch {
    return undefined;
  }
  const versions = names.map((n) => n.slice('vmlinuz-'.length)).filter((v) => existsSync(join('/lib/modules', v, 'modules.dep')));
  versions.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const version = versions.at(-1);
  return version ? { version, path: join('/boot', `vmlinuz-${version}`) } : undefined;
}

/** Module files for `names` and everything they depend on, dependencies first (modules.dep order). */
export function modulesWithDependencies(version: string, names: string[]): string[] {
  const dep = new Map<string, string[]>();
  for (const line of readFileSync(join('/lib/modules', version, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod && rest !== undefined) dep.set(mod, rest.trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map([...dep.keys()].map((k) => [k.split('/').pop()!.replace(/\.ko(\.\w+)?$/, ''), k]));
  const ordered: string[] = [];
  const visit = (mod: string) => {
    if (ordered.includes(mod)) return;
    for (const d of dep.get(mod) ?? []) visit(d);
    ordered.push(mod);
  };
  for (const n of names) {
    const mod = byName.get(n);
    if (!mod) throw new Error(`kernel ${version} has no module ${n}`);
    visit(mod);
  }
  return ordered;
}

/** newc cpio (the initramfs format, Documentation/driver-api/early-userspace/buffer-format.rst). */
export function cpioNewc(entries: Array<{ name: string; mode: number; data?: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer) => {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const nameBuf = Buffer.from(`${name}\0`);
    const header = `070701${hex(ino++)}${hex(mode)}${hex(0)}${hex(0)}${hex(1)}${hex(0)}${hex(data.length)}${hex(0)}${hex(0)}${hex(0)}${hex(0)}${hex(nameBuf.length)}${hex(0)}`;
    const head = Buffer.concat([Buffer.from(header), nameBuf]);
    parts.push(head, pad4(head.length), data, pad4(data.length));
  };
  for (const e of entries) push(e.name, e.mode, e.data ?? Buffer.alloc(0));
  push('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/** Modules every tiny test system loads: virtio disk and NIC, the ACPI power button and evdev (for acpid). */
export const TEST_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'evdev', 'button'];

/**
 * An initramfs whose /init mounts the basics, loads TEST_MODULES, runs `script` (busybox sh)
 * and then waits for the ACPI power button, on which it powers off (printing
 * INGOT-TEST-POWERDOWN).
 */
export function buildInitramfs(script: string): Buffer {
  const kernel = newestKernel();
  if (!kernel) throw new Error('no kernel in /boot with modules (apt-get install linux-image-amd64)');
  const modules = modulesWithDependencies(kernel.version, TEST_MODULES);
  const init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
${modules.map((m) => `insmod /lib/mod/${m.split('/').pop()}`).join('\n')}
mkdir -p /etc/acpi/PWRF /var/run /var/log
printf '#!/bin/sh\\necho INGOT-TEST-POWERDOWN >/dev/ttyS0\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
echo 'PWRF PWRF/00000080' > /etc/acpid.conf
acpid -c /etc/acpi -a /etc/acpid.conf
${script}
while true; do sleep 3600; done
`;
  const entries: Array<{ name: string; mode: number; data?: Buffer }> = [
    ...['bin', 'dev', 'proc', 'sys', 'etc', 'lib', 'lib/mod', 'tmp'].map((d) => ({ name: d, mode: 0o040755 })),
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync('/bin/busybox') },
    { name: 'init', mode: 0o100755, data: Buffer.from(init) },
    ...modules.map((m) => ({ name: `lib/mod/${m.split('/').pop()}`, mode: 0o100644, data: readFileSync(join('/lib/modules', kernel.version, m)) })),
  ];
  return gzipSync(cpioNewc(entries), { level: 1 });
}

function run(cmd: string, args: string[], cwd: string): void {
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Writes DIR/tiny.iso: an ISO 9660 image whose El Torito EFI boot image holds
 * EFI/BOOT/BOOTX64.EFI, a unified kernel image of the newest kernel, `initramfs` and `cmdline`.
 */
export function buildTinyUefiIso(dir: string, initramfs: Buffer, cmdline = 'console=ttyS0 quiet'): string {
  const kernel = newestKernel();
  if (!kernel) throw new Error('no kernel in /boot (apt-get install linux-image-amd64)');
  mkdirSync(join(dir, 'iso-root'), { recursive: true });
  writeFileSync(join(dir, 'initrd.gz'), initramfs);
  writeFileSync(join(dir, 'cmdline'), cmdline);
  // Section addresses after the stub's own (systemd 252 stub layout, as its man page shows).
  const kernelSize = statSync(kernel.path).size;
  const initrdVma = 0x2000000 + Math.ceil((kernelSize + 0x100000) / 0x1000) * 0x1000;
  run('objcopy', [
    '--add-section', '.cmdline=cmdline', '--change-section-vma', '.cmdline=0x30000',
    '--add-section', `.linux=${kernel.path}`, '--change-section-vma', '.linux=0x2000000',
    '--add-section', '.initrd=initrd.gz', '--change-section-vma', `.initrd=0x${initrdVma.toString(16)}`,
    EFI_STUB, 'uki.efi',
  ], dir);
  const kib = Math.ceil(statSync(join(dir, 'uki.efi')).size / 1024) + 512;
  rmSync(join(dir, 'iso-root', 'efi.img'), { force: true });
  run('mkfs.vfat', ['-C', 'iso-root/efi.img', String(kib)], dir);
  run('mmd', ['-i', 'iso-root/efi.img', '::/EFI', '::/EFI/BOOT'], dir);
  run('mcopy', ['-i', 'iso-root/efi.img', 'uki.efi', '::/EFI/BOOT/BOOTX64.EFI'], dir);
  run('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'INGOT_TEST', '-e', 'efi.img', '-no-emul-boot', '-o', 'tiny.iso', 'iso-root'], dir);
  return join(dir, 'tiny.iso');
}
