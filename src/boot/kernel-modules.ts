// The kernel of the agent's ramdisk and the modules it carries. Both come from Debian's
// linux-image-amd64 as installed (/boot/vmlinuz-VERSION, /lib/modules/VERSION). The module list
// is what real servers need to reach their disks and their provisioning network; each name is
// resolved with its dependencies from the kernel's own modules.dep, so the set follows the
// kernel version. docs/ramdisk.md lists the same groups.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const RAMDISK_MODULE_GROUPS: ReadonlyArray<{ group: string; modules: readonly string[] }> = [
  { group: 'NVMe', modules: ['nvme'] },
  { group: 'SATA/AHCI, SCSI disks and CD-ROM', modules: ['ahci', 'ata_piix', 'sd_mod', 'sr_mod', 'sg', 'isofs'] },
  { group: 'virtio (VMs)', modules: ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_console'] },
  { group: 'RAID HBAs', modules: ['megaraid_sas', 'mpt3sas', 'mpi3mr', 'hpsa', 'smartpqi', 'aacraid', 'arcmsr'] },
  { group: 'Intel NICs', modules: ['e1000', 'e1000e', 'igb', 'igc', 'ixgbe', 'ixgbevf', 'i40e', 'iavf', 'ice'] },
  { group: 'Mellanox/NVIDIA NICs', modules: ['mlx4_en', 'mlx5_core'] },
  { group: 'Broadcom NICs', modules: ['bnxt_en', 'tg3', 'bnx2', 'bnx2x'] },
  { group: 'other common NICs', modules: ['qede', 'be2net', 'r8169', 'vmxnet3'] },
  { group: 'USB (virtual media of BMCs, keyboards)', modules: ['xhci_pci', 'ehci_pci', 'usb_storage', 'uas', 'usbhid', 'hid_generic'] },
  { group: 'software RAID', modules: ['md_mod', 'raid1', 'dm_mod'] },
  { group: 'ACPI power button, EFI variables, FAT (ESP)', modules: ['evdev', 'button', 'efivarfs', 'vfat', 'nls_cp437', 'nls_iso8859_1'] },
];

export interface InstalledKernel {
  version: string;
  /** /boot/vmlinuz-VERSION */
  image: string;
  /** /lib/modules/VERSION */
  modulesDir: string;
}

/** The newest kernel in `bootDir` that has its modules installed; undefined when there is none. */
export function newestInstalledKernel(bootDir = '/boot', modulesRoot = '/lib/modules'): InstalledKernel | undefined {
  let names: string[];
  try {
    names = readdirSync(bootDir).filter((n) => n.startsWith('vmlinuz-'));
  } catch {
    return undefined;
  }
  const versions = names.map((n) => n.slice('vmlinuz-'.length)).filter((v) => existsSync(join(modulesRoot, v, 'modules.dep')));
  versions.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const version = versions.at(-1);
  return version ? { version, image: join(bootDir, `vmlinuz-${version}`), modulesDir: join(modulesRoot, version) } : undefined;
}

/** Module names as modprobe compares them: `-` and `_` are the same. */
const canonical = (name: string) => name.replace(/-/g, '_');
const moduleName = (file: string) => canonical(file.split('/').pop()!.replace(/\.ko(\.(xz|zst|gz))?$/, ''));

export interface ModuleSelection {
  /** Module files relative to the modules directory, each after its dependencies (insmod order). */
  files: string[];
  /** Names built into the kernel (nothing to load). */
  builtin: string[];
  /** Names this kernel has neither as a module nor built in. */
  absent: string[];
}

/** Resolves `names` against the kernel's modules.dep and modules.builtin. */
export function selectModules(modulesDir: string, names: readonly string[]): ModuleSelection {
  const dep = new Map<string, string[]>();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    dep.set(line.slice(0, colon), line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map([...dep.keys()].map((file) => [moduleName(file), file]));
  let builtinNames = new Set<string>();
  try {
    builtinNames = new Set(readFileSync(join(modulesDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(moduleName));
  } catch {
    // no modules.builtin: nothing is known to be built in
  }
  const files: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const d of dep.get(file) ?? []) visit(d);
    files.push(file);
  };
  const builtin: string[] = [];
  const absent: string[] = [];
  for (const name of names) {
    const file = byName.get(canonical(name));
    if (file) visit(file);
    else if (builtinNames.has(canonical(name))) builtin.push(name);
    else absent.push(name);
  }
  return { files, builtin, absent };
}

/**
 * A module file's bytes, uncompressed: busybox's insmod hands the bytes to init_module(2),
 * which takes plain ELF. Debian's kernels since trixie ship modules as .ko.xz.
 */
export function readModuleUncompressed(path: string): Buffer {
  if (path.endsWith('.ko')) return readFileSync(path);
  if (path.endsWith('.ko.xz')) return execFileSync('xz', ['-dc', path], { maxBuffer: 256 * 1024 * 1024 });
  if (path.endsWith('.ko.zst')) return execFileSync('zstd', ['-dc', path], { maxBuffer: 256 * 1024 * 1024 });
  throw new RangeError(`module ${path}: unknown compression`);
}
