// The config drive in the layout cloud-init's ConfigDrive datasource reads: a filesystem
// labelled `config-2` holding openstack/latest/meta_data.json, user_data and
// network_data.json. Written as ISO 9660 (cloud-init accepts iso9660 or vfat) into a new GPT
// partition at the end of the root disk, as Ironic does for whole-disk images.
import { appendGptPartition, type GptPartition } from '../images/gpt.js';
import { buildIso9660 } from '../images/iso9660.js';
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

/** Writes the config drive into a new partition at the end of `disk`; returns the partition. */
export async function writeConfigDrive(disk: OpenDisk, content: ConfigDriveContent): Promise<GptPartition> {
  const iso = buildConfigDrive(content);
  const partition = await appendGptPartition(disk, { sizeBytes: iso.length, name: 'config-2' });
  const start = partition.firstLba * 512;
  await disk.write(iso, start);
  // Zero the rest of the partition: a previous tenant's bytes must not trail the filesystem.
  const end = (partition.lastLba + 1) * 512;
  const zeros = Buffer.alloc(1024 * 1024);
  for (let at = start + iso.length; at < end; at += zeros.length) await disk.write(zeros.subarray(0, Math.min(zeros.length, end - at)), at);
  await disk.sync();
  return partition;
}
