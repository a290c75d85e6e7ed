// The per-host boot medium: a bootable ISO 9660 image (El Torito, UEFI) that starts the agent's
// ramdisk and carries that host's boot configuration (agent API URL, CA, one-boot token) in
// ingot/boot_config.json, which the agent reads after boot.
//
// xorriso builds one template per ramdisk (at `ingot ramdisk build`), with the configuration
// file as a fixed-size slot of JSON whitespace. A host's medium is that template with its
// configuration written into the slot, streamed by the agent listener: the token is never
// written to disk, and serving a medium costs no ISO build. JSON allows trailing whitespace,
// so the padded file parses as it is.
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BootConfig } from '../model/agent-protocol.js';
import { BOOT_CONFIG_PATH, BOOT_MEDIUM_VOLUME_ID } from '../images/boot-config-iso.js';
import { buildUnifiedKernelImage } from './unified-kernel-image.js';

/** Room for the configuration: a URL, a token and a CA bundle as large as BootConfig allows (256 KiB). */
export const CONFIG_SLOT_BYTES = 272 * 1024;
const SLOT_MARKER = '{"ingotBootConfigSlot":"not filled in: this is the template of the agent boot medium"}';
/** Fixed file and volume dates (SOURCE_DATE_EPOCH), so the template depends only on its inputs. */
const FIXED_EPOCH_SECONDS = 1_700_000_000;

export interface BootIsoTemplate {
  path: string;
  /** Byte offset of the configuration slot in the image. */
  configOffset: number;
  configLength: number;
}

export interface TemplateInputs {
  efiStub: string;
  kernel: string;
  initramfs: string;
  cmdline: string;
}

/** Builds `dir`/agent-boot.iso; scratch files go in `dir` too. */
export function buildBootIsoTemplate(dir: string, inputs: TemplateInputs): BootIsoTemplate {
  const root = join(dir, 'iso-root');
  mkdirSync(join(root, 'ingot'), { recursive: true });
  mkdirSync(join(root, 'boot'), { recursive: true });
  const slot = Buffer.alloc(CONFIG_SLOT_BYTES, 0x20);
  slot.write(SLOT_MARKER, 0, 'utf8');
  slot[CONFIG_SLOT_BYTES - 1] = 0x0a;
  writeFileSync(join(root, BOOT_CONFIG_PATH), slot);
  writeFileSync(join(dir, 'cmdline'), inputs.cmdline);
  const uki = join(dir, 'BOOTX64.EFI');
  buildUnifiedKernelImage({ efiStub: inputs.efiStub, kernel: inputs.kernel, initramfs: inputs.initramfs, cmdlineFile: join(dir, 'cmdline') }, uki);
  const fixed = new Date(FIXED_EPOCH_SECONDS * 1000);
  utimesSync(uki, fixed, fixed);
  // The EFI system partition image that El Torito points at: FAT holding EFI/BOOT/BOOTX64.EFI.
  const efiImg = join(root, 'boot', 'efi.img');
  const kib = Math.ceil(readFileSync(uki).length / 1024) + 1024;
  const env = { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH_SECONDS), MTOOLS_SKIP_CHECK: '1', LC_ALL: 'C' };
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  run('mkfs.vfat', ['--invariant', '-i', '494e474f', '-n', 'INGOT_EFI', '-C', efiImg, String(kib)]);
  run('mmd', ['-i', efiImg, '::/EFI', '::/EFI/BOOT']);
  run('mcopy', ['-m', '-i', efiImg, uki, '::/EFI/BOOT/BOOTX64.EFI']);
  const iso = join(dir, 'agent-boot.iso');
  run('xorriso', [
    '-as', 'mkisofs', '-quiet', '-R', '-l', '-V', BOOT_MEDIUM_VOLUME_ID,
    '-e', 'boot/efi.img', '-no-emul-boot',
    '-o', iso, root,
  ]);
  const image = readFileSync(iso);
  const configOffset = image.indexOf(SLOT_MARKER);
  if (configOffset < 0 || image.indexOf(SLOT_MARKER, configOffset + 1) >= 0) throw new Error('the boot medium template does not hold exactly one configuration slot');
  return { path: iso, configOffset, configLength: CONFIG_SLOT_BYTES };
}

/** The configuration as it goes into the slot: JSON, then spaces, then a newline. */
export function configSlotBytes(config: BootConfig, length = CONFIG_SLOT_BYTES): Buffer {
  const json = Buffer.from(JSON.stringify(config), 'utf8');
  if (json.length + 1 > length) throw new RangeError(`the boot configuration (${json.length} bytes) does not fit the boot medium's ${length}-byte slot; use a smaller CA bundle`);
  const slot = Buffer.alloc(length, 0x20);
  json.copy(slot);
  slot[length - 1] = 0x0a;
  return slot;
}

/** One host's medium: the template with `config` in the slot, as a stream of `size` bytes. */
export function hostBootIso(template: BootIsoTemplate, size: number, config: BootConfig): Readable {
  const slot = configSlotBytes(config, template.configLength);
  async function* parts() {
    yield* createReadStream(template.path, { start: 0, end: template.configOffset - 1 });
    yield slot;
    const after = template.configOffset + template.configLength;
    if (after < size) yield* createReadStream(template.path, { start: after, end: size - 1 });
  }
  return Readable.from(parts(), { objectMode: false });
}
