// A unified kernel image: systemd's EFI stub (systemd-boot-efi) with the kernel, the initramfs
// and the command line added as PE sections, one EFI program that UEFI firmware starts
// directly (what `ukify` makes; objcopy from binutils does the same here).
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';

export interface UkiParts {
  efiStub: string;
  kernel: string;
  initramfs: string;
  /** A file holding the kernel command line. */
  cmdlineFile: string;
}

export function buildUnifiedKernelImage(parts: UkiParts, output: string): void {
  // Section addresses after the stub's own, as systemd-stub(7) lays them out for objcopy.
  const kernelSize = statSync(parts.kernel).size;
  const initrdVma = 0x2000000 + Math.ceil((kernelSize + 0x100000) / 0x1000) * 0x1000;
  execFileSync('objcopy', [
    '--add-section', `.cmdline=${parts.cmdlineFile}`, '--change-section-vma', '.cmdline=0x30000',
    '--add-section', `.linux=${parts.kernel}`, '--change-section-vma', '.linux=0x2000000',
    '--add-section', `.initrd=${parts.initramfs}`, '--change-section-vma', `.initrd=0x${initrdVma.toString(16)}`,
    parts.efiStub, output,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
}
