// Where a booted agent finds its boot configuration (agent API URL, CA, one-boot token): the
// medium the conductor inserted, an ISO 9660 volume labelled INGOT_AGENT holding
// ingot/boot_config.json (src/images/boot-config-iso.ts; the bootable medium keeps that file).
// Three ways to point at it, in the order they are honoured:
//   - a JSON file (the configuration itself, e.g. on a medium the init script mounted);
//   - a medium: a mounted directory (DIR/ingot/boot_config.json), an ISO file or a block device;
//   - auto: every block device in /sys/block is probed (CD drives first) for the INGOT_AGENT
//     volume, reading only its descriptors, directories and that one file. Virtual CD drives
//     can appear a few seconds after the kernel starts, so the probe repeats until a deadline.
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BOOT_CONFIG_PATH, BOOT_MEDIUM_VOLUME_ID, isoSourceOfFd, isoVolumeId, parseBootConfig, readBootConfigFromIso } from '../images/boot-config-iso.js';
import type { BootConfig } from '../model/agent-protocol.js';

/** Devices that never hold the medium: RAM disks, compressed swap, device-mapper, md, nbd, floppies. */
const NEVER_THE_MEDIUM = /^(ram|zram|dm-|md|nbd|fd)/;

export type BootConfigSource = { file: string } | { medium: string } | { auto: { waitSeconds?: number; log?: (message: string, fields?: Record<string, unknown>) => void } };

/** Reads the boot configuration from an ISO file or block device. */
function fromImage(path: string): BootConfig {
  const fd = openSync(path, 'r');
  try {
    const stat = fstatSync(fd);
    const size = stat.isBlockDevice() ? blockDeviceBytes(path) : stat.size;
    return readBootConfigFromIso(isoSourceOfFd(fd, size));
  } finally {
    closeSync(fd);
  }
}

/** Size of a block device from /sys (fstat says 0 for devices); sectors there are 512 bytes. */
function blockDeviceBytes(path: string): number {
  const sectors = Number(readFileSync(`/sys/class/block/${basename(path)}/size`, 'utf8').trim());
  if (!Number.isSafeInteger(sectors) || sectors <= 0) throw new RangeError(`${path}: no medium in the drive`);
  return sectors * 512;
}

function fromMedium(medium: string): BootConfig {
  if (statSync(medium).isDirectory()) return parseBootConfig(readFileSync(join(medium, BOOT_CONFIG_PATH)));
  return fromImage(medium);
}

/** Block devices to probe, CD drives first (virtual media), then the rest in name order. */
async function candidates(): Promise<string[]> {
  const names = (await readdir('/sys/block').catch(() => [] as string[])).filter((n) => !NEVER_THE_MEDIUM.test(n)).sort();
  return [...names.filter((n) => n.startsWith('sr')), ...names.filter((n) => !n.startsWith('sr'))];
}

/** The first block device carrying the INGOT_AGENT volume, or undefined. */
async function probe(): Promise<string | undefined> {
  for (const name of await candidates()) {
    const sectors = Number((await readFile(`/sys/block/${name}/size`, 'utf8').catch(() => '0')).trim());
    if (!(sectors > 0)) continue;
    let fd: number | undefined;
    try {
      fd = openSync(`/dev/${name}`, 'r');
      if (isoVolumeId(isoSourceOfFd(fd, sectors * 512)) === BOOT_MEDIUM_VOLUME_ID) return `/dev/${name}`;
    } catch {
      // No device node, no medium, not readable: not ours.
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  return undefined;
}

/** Finds and validates the boot configuration; throws an Error saying where it looked and what to check. */
export async function findBootConfig(source: BootConfigSource): Promise<{ config: BootConfig; from: string }> {
  if ('file' in source) return { config: parseBootConfig(readFileSync(source.file)), from: source.file };
  if ('medium' in source) return { config: fromMedium(source.medium), from: source.medium };
  const deadline = Date.now() + (source.auto.waitSeconds ?? 60) * 1000;
  for (;;) {
    const device = await probe();
    if (device) return { config: fromImage(device), from: device };
    if (Date.now() >= deadline) {
      const seen = await candidates();
      throw new Error(
        `no boot medium labelled ${BOOT_MEDIUM_VOLUME_ID} on any block device (looked at ${seen.length > 0 ? seen.join(', ') : 'none'}): check that the BMC inserted the virtual media and that the ramdisk has the drivers of the drive it appears as (sr_mod with ahci, ata_piix, virtio_scsi or usb-storage)`,
      );
    }
    source.auto.log?.('no boot medium yet; looking again', { devices: (await candidates()).length });
    await sleep(1000);
  }
}
