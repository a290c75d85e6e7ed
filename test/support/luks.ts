// A LUKS1 header writer for tests (LUKS On-Disk Format Specification 1.2.3): a container
// qemu-img recognises, built without cryptsetup and without qemu's PBKDF benchmark (which
// fails in sandboxes that cannot measure thread CPU time). The key slots hold no usable key
// material: the container can be inspected, never unlocked.
import { randomBytes, randomUUID } from 'node:crypto';

const KEY_BYTES = 32; // aes-128 in XTS mode
const STRIPES = 4000;
const SLOT_SECTORS = 256; // 32 * 4000 bytes = 250 sectors, rounded up to 4 KiB alignment
const FIRST_SLOT_SECTOR = 8;
export const LUKS1_PAYLOAD_SECTOR = 4096;

export function luks1Container(payloadBytes: number): Buffer {
  const disk = Buffer.alloc(LUKS1_PAYLOAD_SECTOR * 512 + payloadBytes);
  Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]).copy(disk, 0);
  disk.writeUInt16BE(1, 6);
  disk.write('aes', 8, 'latin1');
  disk.write('xts-plain64', 40, 'latin1');
  disk.write('sha256', 72, 'latin1');
  disk.writeUInt32BE(LUKS1_PAYLOAD_SECTOR, 104);
  disk.writeUInt32BE(KEY_BYTES, 108);
  randomBytes(20).copy(disk, 112); // master key digest
  randomBytes(32).copy(disk, 132); // its salt
  disk.writeUInt32BE(1000, 164);
  disk.write(randomUUID(), 168, 'latin1');
  for (let i = 0; i < 8; i++) {
    const s = 208 + i * 48;
    disk.writeUInt32BE(i === 0 ? 0x00ac71f3 : 0x0000dead, s);
    disk.writeUInt32BE(i === 0 ? 1000 : 0, s + 4);
    if (i === 0) randomBytes(32).copy(disk, s + 8);
    disk.writeUInt32BE(FIRST_SLOT_SECTOR + i * SLOT_SECTORS, s + 40);
    disk.writeUInt32BE(STRIPES, s + 44);
  }
  return disk;
}
