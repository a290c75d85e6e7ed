// A whole-disk GPT image that boots under UEFI and reports what it finds, for the VM
// end-to-end test: an EFI system partition holding a unified kernel image at the
// removable-media path EFI/BOOT/BOOTX64.EFI (what OVMF boots from a disk with no boot entries),
// whose /init looks for the config drive the agent wrote (label config-2), and prints
//   INGOT-E2E-BOOTED
//   INGOT-E2E-USERDATA-SHA256 <hex of openstack/latest/user_data>   (or "none")
// to the serial console, then idles until the power button.
import { createHash } from 'node:crypto';
import { openSync, closeSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { buildEfiFat, buildInitramfs, buildTinyUki, run } from './tiny-boot-iso.js';

export const BOOTED_MARKER = 'INGOT-E2E-BOOTED';
export const USER_DATA_DIGEST_KEY = 'INGOT-E2E-USERDATA-SHA256';

const SECTOR = 512;
/** The ESP starts at 1 MiB, as partitioning tools align it. */
const ESP_FIRST_LBA = 2048;

/** The guest's script: find the config drive, print the marker and the user data's digest. */
export function markerScript(): string {
  return `
for i in $(seq 1 50); do [ -e /sys/block/vda ] && break; sleep 0.2; done
sleep 1
echo ${BOOTED_MARKER}
drive=$(findfs LABEL=config-2 2>/dev/null)
digest=none
if [ -n "$drive" ] && mount -t iso9660 -o ro "$drive" /mnt; then
  [ -f /mnt/openstack/latest/user_data ] && digest=$(sha256sum /mnt/openstack/latest/user_data | cut -d' ' -f1)
  umount /mnt
fi
echo "${USER_DATA_DIGEST_KEY} $digest"
`;
}

export interface MarkerDiskImage {
  path: string;
  sizeBytes: number;
  /** Byte range of the EFI system partition in the image. */
  esp: { offset: number; length: number };
}

/** The digest line the guest prints for `userData`. */
export function expectedDigestLine(userData: string): string {
  return `${USER_DATA_DIGEST_KEY} ${createHash('sha256').update(userData, 'utf8').digest('hex')}`;
}

/** Writes DIR/marker-disk.raw (and scratch files in DIR). */
export function buildMarkerDiskImage(dir: string): MarkerDiskImage {
  const uki = buildTinyUki(join(dir, 'uki'), buildInitramfs(markerScript(), ['isofs']), 'console=ttyS0 quiet');
  const fat = join(dir, 'esp.fat');
  const fatBytes = buildEfiFat(fat, uki, 2048);
  const espSectors = Math.ceil(fatBytes / SECTOR);
  // 1 MiB before the ESP, 1 MiB after it for the backup GPT.
  const sizeBytes = Math.ceil(((ESP_FIRST_LBA + espSectors) * SECTOR + 1024 * 1024) / 1048576) * 1048576;
  const path = join(dir, 'marker-disk.raw');
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, sizeBytes);
    writeSync(fd, readFileSync(fat), 0, fatBytes, ESP_FIRST_LBA * SECTOR);
  } finally {
    closeSync(fd);
  }
  run('sgdisk', ['-n', `1:${ESP_FIRST_LBA}:${ESP_FIRST_LBA + espSectors - 1}`, '-t', '1:ef00', '-c', '1:EFI system', path], dir);
  return { path, sizeBytes, esp: { offset: ESP_FIRST_LBA * SECTOR, length: espSectors * SECTOR } };
}

/** A qcow2 image whose backing file is `backing` (what an image service must refuse). */
export function buildBackingFileQcow2(dir: string, backing: string): string {
  const path = join(dir, 'hostile.qcow2');
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', 'raw', path], dir);
  return path;
}
