import { describe, expect, it } from 'vitest';
import { gptStructures, writeGpt, EFI_SYSTEM_GUID, FIRST_USABLE_LBA } from './gpt-writer.js';
import { readGptPartitions, LINUX_FILESYSTEM_GUID } from './gpt.js';

const sectorIo = (data: Buffer) => ({ size: data.length, read: async (o: number, l: number) => data.subarray(o, o + l), write: async () => {} });

describe('gpt writer', () => {
  it('writes a GPT the reader accepts, with the partitions as given', async () => {
    const disk = writeGpt(Buffer.alloc(4 * 1024 * 1024), [
      { firstLba: 2048, lastLba: 4095, name: 'EFI', typeGuid: EFI_SYSTEM_GUID },
      { firstLba: 4096, lastLba: 8191 - 34, name: 'root' },
    ]);
    const parts = await readGptPartitions(sectorIo(disk));
    expect(parts.map((p) => [p.name, p.firstLba, p.lastLba, p.typeGuid])).toEqual([
      ['EFI', 2048, 4095, EFI_SYSTEM_GUID],
      ['root', 4096, 8191 - 34, LINUX_FILESYSTEM_GUID],
    ]);
    expect(disk.readUInt16LE(510)).toBe(0xaa55);
    // The backup header sits in the last sector and points back at the primary.
    const backup = disk.subarray(disk.length - 512);
    expect(backup.toString('latin1', 0, 8)).toBe('EFI PART');
    expect(Number(backup.readBigUInt64LE(32))).toBe(1);
  });

  it('gptStructures gives the head and tail that writeGpt places at both ends', () => {
    const size = 2 * 1024 * 1024;
    const { head, tail } = gptStructures(size, [{ firstLba: 2048, lastLba: 4000 }]);
    expect(head.length).toBe(FIRST_USABLE_LBA * 512);
    expect(tail.length).toBe(33 * 512);
    expect(head.toString('latin1', 512, 520)).toBe('EFI PART');
    expect(tail.toString('latin1', tail.length - 512, tail.length - 504)).toBe('EFI PART');
    expect(() => gptStructures(size + 1, [])).toThrow(/multiple of 512/);
  });
});
