// The config drive in the layout cloud-init's ConfigDrive datasource reads: a filesystem
// labelled `config-2` holding openstack/latest/meta_data.json, user_data and
// network_data.json. Written as ISO 9660 (cloud-init accepts iso9660 or vfat) into a new
// partition at the end of the root disk, as Ironic does for whole-disk images: a GPT partition
// named config-2 on GPT images, a new primary partition (type 0x83) on MBR images.
import { appendGptPartition, GptError } from '../images/gpt.js';
import { buildIso9660 } from '../images/iso9660.js';
import { appendMbrPartition, isClassicMbr } from '../images/mbr.js';
import type { OpenDisk } from './machine.js';

export interface ConfigDriveContent {
  metaData: Record<string, unknown>;
  userData?: string;
  networkData?: Record<string, unknown>;
}

export function buildConfigDrive(content: ConfigDriveContent): Buffer {
  const files = [
    { path: 'openstack/latest/meta_data.json', data: Buffer.from(JSON.stringify(content.metaData), 'utf8') },
    { path: 'openstack/latest/network_data.json', data: Buffer.from(JSON.stringify(content.networkData ?? {}), 'utf8') },
  ];
  if (content.userData !== undefined) files.push({ path: 'openstack/latest/user_data', data: Buffer.from(content.userData, 'utf8') });
  return buildIso9660(files, { volumeId: 'config-2' });
}

/** Where the config drive went: the partition table kind, the partition number and its byte range. */
export interface ConfigDrivePartition {
  table: 'gpt' | 'mbr';
  number: number;
  start: number;
  end: number;
}

/**
 * Writes the config drive into a new partition at the end of `disk`; returns the partition.
 * The image's table decides which kind: a GPT (LBA 1 says "EFI PART", whatever the protective
 * MBR looks like), else a classic MBR; a disk with neither is refused (GptError).
 */
export async function writeConfigDrive(disk: OpenDisk, content: ConfigDriveContent): Promise<ConfigDrivePartition> {
  const iso = buildConfigDrive(content);
  const head = await disk.read(0, 1024);
  let partition: ConfigDrivePartition;
  const gpt = head.toString('latin1', 512, 520) === 'EFI PART';
  if (!gpt && !isClassicMbr(head.subarray(0, 512))) {
    throw new GptError('the image has neither a GPT nor an MBR partition table, so there is nowhere to add the config drive: use a whole-disk image with a partition table');
  }
  if (!gpt) {
    const added = await appendMbrPartition(disk, { sizeBytes: iso.length });
    partition = { table: 'mbr', number: added.number, start: added.startLba * 512, end: (added.startLba + added.sectors) * 512 };
  } else {
    const added = await appendGptPartition(disk, { sizeBytes: iso.length, name: 'config-2' });
    partition = { table: 'gpt', number: added.number, start: added.firstLba * 512, end: (added.lastLba + 1) * 512 };
  }
  const { start, end } = partition;
  await disk.write(iso, start);
  // Zero the rest of the partition: a previous tenant's bytes must not trail the filesystem.
  const zeros = Buffer.alloc(1024 * 1024);
  for (let at = start + iso.length; at < end; at += zeros.length) await disk.write(zeros.subarray(0, Math.min(zeros.length, end - at)), at);
  await disk.sync();
  return partition;
}
